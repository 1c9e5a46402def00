#if canImport(Glibc)
import Glibc
#endif
import BeanCore
import Synchronization
import Testing
@testable import BeanCapture

/// Collects camera events for inspection.
final class EventLog: CameraEventSink, @unchecked Sendable {
    private let lock = ConditionLock()
    private var list: [CameraEvent] = []
    func cameraEvent(_ event: CameraEvent) { lock.withLock { list.append(event) } }
    var events: [CameraEvent] { lock.withLock { list } }
}

/// These run without any V4L2 device (the build machines have none); the real driver is exercised
/// by Tests/integration/50-v4l2-vivid.sh.
@Suite struct V4L2CameraTests {
    func settings(_ device: String, exitOnLoss: Bool = false) -> CameraSettings {
        CameraSettings(name: "cam0", device: device, width: 640, height: 480, fps: 30, deviceTimeout: 0.2,
                       exitOnLoss: exitOnLoss, reopenBackoffInitial: 0.02, reopenBackoffMax: 0.05)
    }

    @Test func resolvesNamesThroughTheSearchDirectories() throws {
        let byID = TemporaryDirectory(), byPath = TemporaryDirectory()
        defer { byID.cleanup(); byPath.cleanup() }
        try byPath.write("platform-usb-0:1-video-index0", [])
        let dirs = [byID.path, byPath.path]
        #expect(V4L2Camera.resolveDevice("platform-usb-0:1-video-index0", searchDirectories: dirs) == byPath.file("platform-usb-0:1-video-index0"))
        try byID.write("platform-usb-0:1-video-index0", [])
        #expect(V4L2Camera.resolveDevice("platform-usb-0:1-video-index0", searchDirectories: dirs) == byID.file("platform-usb-0:1-video-index0"))
        #expect(V4L2Camera.resolveDevice("/dev/video7", searchDirectories: dirs) == "/dev/video7")
        #expect(V4L2Camera.resolveDevice("usb-Missing", searchDirectories: dirs) == nil)
    }

    @Test func invalidSettingsNameTheKey() {
        var bad = settings("/dev/video0")
        bad.width = 641
        bad.bufferCount = 1
        let error = #expect(throws: CameraError.self) { try V4L2Camera(settings: bad) }
        #expect(error?.kind == .invalidSettings)
        #expect(error?.description.contains("width") == true && error?.description.contains("buffers") == true)
        #expect(settings("/dev/video0").validationErrors().isEmpty)
    }

    @Test func missingDeviceWithExitOnLossThrows() throws {
        let log = EventLog()
        let camera = try V4L2Camera(settings: settings("/nonexistent/video9", exitOnLoss: true), events: log)
        let error = #expect(throws: CameraError.self) { try camera.nextFrame() }
        #expect(error?.kind == .unavailable)
        #expect(error?.description.contains("/nonexistent/video9") == true)
        #expect(camera.health.state == .stopped)
        #expect(log.events.map(\.state) == [.stopped])
    }

    @Test func missingDeviceIsRetriedWithBackoffAndLoggedOnce() throws {
        let log = EventLog()
        let camera = try V4L2Camera(settings: settings("no-such-camera"), events: log, searchDirectories: ["/nonexistent"])
        let thread = CaptureThread(source: camera)
        try thread.start()
        // Long enough for several attempts at 20…50 ms backoff.
        usleep(400_000)
        #expect(camera.health.state == .reopening)
        #expect(camera.health.lastError?.contains("no device named no-such-camera") == true)
        thread.stop()
        #expect(log.events.map(\.state) == [.reopening, .stopped], "one event per state change, not per attempt")
        if case .finished(let error) = thread.handoff.next(timeout: 1) {
            #expect(error == nil)
        } else {
            Issue.record("stopping the camera did not end the stream")
        }
    }

    @Test func nonV4L2DeviceIsUnsupportedAndNotRetried() throws {
        let log = EventLog()
        let camera = try V4L2Camera(settings: settings("/dev/null"), events: log)
        let error = #expect(throws: CameraError.self) { try camera.nextFrame() }
        #expect(error?.kind == .unsupported)
        #expect(error?.description.contains("/dev/null") == true)
        #expect(camera.health.state == .stopped)
    }
}

@Suite struct RateMeterTests {
    @Test func measuresFramesPerSecond() {
        var meter = RateMeter()
        for k in 0...40 { meter.tick(now: 1_000_000_000 + UInt64(k) * 40_000_000) } // 25 fps for 1.6 s
        #expect(abs(meter.rate - 25) < 0.01)
    }
}
