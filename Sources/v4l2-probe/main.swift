// v4l2-probe: drives BeanCapture's V4L2Camera against a real driver (vivid, inside QEMU; see
// Tests/v4l2/) and prints machine-readable `PROBE key=value …` lines for the host to check.
// It reports what it saw; the pass/fail judgement lives in the host-side checker.
#if canImport(Glibc)
import Glibc
#endif
import BeanCapture
import BeanCore

setvbuf(stdout, nil, _IOLBF, 0)

func say(_ fields: [(String, String)]) {
    print("PROBE " + fields.map { "\($0.0)=\($0.1.replacingSpaces())" }.joined(separator: " "))
}

extension String {
    func replacingSpaces() -> String { String(map { $0 == " " ? "_" : $0 }) }
}

/// Mean colour of each of `bars` equal-width vertical bars, sampled over rows at 60…90 % of the
/// height (below vivid's text overlay), 20 % inset from each bar's edges.
func barMeans(_ frame: Frame, bars: Int) -> [(Int, Int, Int)] {
    var result: [(Int, Int, Int)] = []
    let barWidth = frame.width / bars
    for bar in 0..<bars {
        var sum = (0, 0, 0), n = 0
        let x0 = bar * barWidth + barWidth / 5, x1 = (bar + 1) * barWidth - barWidth / 5
        for y in stride(from: frame.height * 6 / 10, to: frame.height * 9 / 10, by: 4) {
            for x in stride(from: x0, to: x1, by: 2) {
                let i = y * frame.stride + x * 3
                sum.0 += Int(frame.pixels[i]); sum.1 += Int(frame.pixels[i + 1]); sum.2 += Int(frame.pixels[i + 2])
                n += 1
            }
        }
        result.append((sum.0 / max(n, 1), sum.1 / max(n, 1), sum.2 / max(n, 1)))
    }
    return result
}

let printer = ClosureCameraEventSink { event in
    say([("event", event.state.rawValue), ("camera", event.camera), ("message", event.message)])
    if event.state == .lost { close(open("/tmp/probe-lost", O_CREAT | O_WRONLY, 0o644)) }
}

func settings(_ name: String, device: String, format: CameraSettings.PixelFormatPreference) -> CameraSettings {
    CameraSettings(name: name, device: device, width: 640, height: 480, fps: 30, pixelFormat: format,
                   bufferCount: 4, deviceTimeout: 2, exitOnLoss: false,
                   reopenBackoffInitial: 0.2, reopenBackoffMax: 1)
}

/// Captures `count` frames in one pixel format through a CaptureThread and reports them.
func captureRun(device: String, format: CameraSettings.PixelFormatPreference, count: Int) -> Bool {
    let camera: V4L2Camera
    do { camera = try V4L2Camera(settings: settings("vivid-\(format.rawValue)", device: device, format: format), events: printer) }
    catch { say([("run", format.rawValue), ("error", "\(error)")]); return false }
    let thread = CaptureThread(source: camera, handoffCapacity: 8)
    do { try thread.start() } catch { say([("run", format.rawValue), ("error", "\(error)")]); return false }
    defer { thread.stop() }
    var frames = 0, increasing = true, last: UInt64?, first: UInt64 = 0, sizes = Set<String>()
    var lastFrame: Frame?
    let deadline = MonotonicInstant.now().nanoseconds + 30_000_000_000
    while frames < count && MonotonicInstant.now().nanoseconds < deadline {
        switch thread.handoff.next(timeout: 1) {
        case .frame(let frame):
            if let last, frame.sequence <= last { increasing = false }
            if last == nil { first = frame.sequence }
            last = frame.sequence
            sizes.insert("\(frame.width)x\(frame.height)")
            frames += 1
            lastFrame = frame
        case .timedOut: continue
        case .finished(let error):
            say([("run", format.rawValue), ("error", "\(error.map { "\($0)" } ?? "source ended")")])
            return false
        }
    }
    let health = camera.health
    say([("run", format.rawValue), ("fourcc", health.format?.fourcc ?? "?"),
         ("native_yuyv", "\(health.format?.convertedNatively ?? false)"),
         ("libv4lconvert", "\(health.format?.convertedByLibv4l ?? false)"),
         ("frames", "\(frames)"), ("sizes", sizes.sorted().joined(separator: ",")),
         ("seq_first", "\(first)"), ("seq_last", "\(last ?? 0)"), ("seq_increasing", "\(increasing)"),
         ("fps", "\((health.measuredFPS * 10).rounded() / 10)"), ("dropped", "\(health.droppedFrames)"),
         ("skipped", "\(health.skippedFrames)")])
    if let lastFrame {
        let means = barMeans(lastFrame, bars: 8).map { "\($0.0),\($0.1),\($0.2)" }.joined(separator: ";")
        say([("bars", format.rawValue), ("rgb", means)])
    }
    return frames >= count
}

/// Streams, signals the init script to pull the device, and waits for loss and recovery.
func lossRun(device: String) -> Bool {
    let camera: V4L2Camera
    do { camera = try V4L2Camera(settings: settings("vivid-loss", device: device, format: .auto), events: printer) }
    catch { say([("loss", "setup"), ("error", "\(error)")]); return false }
    let thread = CaptureThread(source: camera, handoffCapacity: 4)
    do { try thread.start() } catch { say([("loss", "setup"), ("error", "\(error)")]); return false }
    defer { thread.stop() }
    var before = 0, after = 0, signalled = false, sawLost = false, last: UInt64?, increasing = true
    var statesSeen: [String] = []
    let deadline = MonotonicInstant.now().nanoseconds + 60_000_000_000
    while MonotonicInstant.now().nanoseconds < deadline {
        let state = camera.health.state
        if statesSeen.last != state.rawValue { statesSeen.append(state.rawValue) }
        if state == .lost || state == .reopening { sawLost = true }
        switch thread.handoff.next(timeout: 0.2) {
        case .frame(let frame):
            if let last, frame.sequence <= last { increasing = false }
            last = frame.sequence
            if sawLost { after += 1 } else { before += 1 }
            if before >= 10 && !signalled {
                close(open("/tmp/probe-streaming", O_CREAT | O_WRONLY, 0o644))
                signalled = true
            }
        case .timedOut: break
        case .finished(let error):
            say([("loss", "ended"), ("error", "\(error.map { "\($0)" } ?? "source ended")")])
            return false
        }
        if after >= 30 { break }
    }
    let health = camera.health
    say([("loss", "result"), ("frames_before", "\(before)"), ("frames_after", "\(after)"),
         ("states", statesSeen.joined(separator: ",")), ("final_state", health.state.rawValue),
         ("losses", "\(health.losses)"), ("seq_increasing", "\(increasing)"),
         ("last_error", health.lastError ?? "")])
    return after >= 30
}

/// With `exitOnLoss`, a pulled device must end the stream with an `unavailable` error instead of
/// reopening.
func exitOnLossRun(device: String) -> Bool {
    var config = settings("vivid-exit", device: device, format: .auto)
    config.exitOnLoss = true
    let camera: V4L2Camera
    do { camera = try V4L2Camera(settings: config, events: printer) }
    catch { say([("exit_on_loss", "setup"), ("error", "\(error)")]); return false }
    let thread = CaptureThread(source: camera, handoffCapacity: 4)
    do { try thread.start() } catch { say([("exit_on_loss", "setup"), ("error", "\(error)")]); return false }
    defer { thread.stop() }
    var frames = 0, endedWith = "timeout", kind = ""
    let deadline = MonotonicInstant.now().nanoseconds + 30_000_000_000
    loop: while MonotonicInstant.now().nanoseconds < deadline {
        switch thread.handoff.next(timeout: 0.2) {
        case .frame:
            frames += 1
            if frames == 10 { close(open("/tmp/probe-streaming", O_CREAT | O_WRONLY, 0o644)) }
        case .timedOut: continue
        case .finished(let error):
            endedWith = error == nil ? "end" : "error"
            kind = (error as? CameraError)?.kind.rawValue ?? "\(error.map { "\($0)" } ?? "")"
            break loop
        }
    }
    say([("exit_on_loss", "result"), ("frames", "\(frames)"), ("ended_with", endedWith), ("error_kind", kind),
         ("final_state", camera.health.state.rawValue)])
    return endedWith == "error"
}

let arguments = CommandLine.arguments
guard arguments.count >= 3 else {
    print("usage: v4l2-probe capture DEVICE FORMAT COUNT | loss DEVICE | exit-on-loss DEVICE")
    exit(2)
}
switch arguments[1] {
case "capture" where arguments.count == 5:
    guard let format = CameraSettings.PixelFormatPreference(rawValue: arguments[3]), let count = Int(arguments[4]) else {
        print("v4l2-probe: bad format or count"); exit(2)
    }
    exit(captureRun(device: arguments[2], format: format, count: count) ? 0 : 1)
case "loss":
    exit(lossRun(device: arguments[2]) ? 0 : 1)
case "exit-on-loss":
    exit(exitOnLossRun(device: arguments[2]) ? 0 : 1)
default:
    print("usage: v4l2-probe capture DEVICE FORMAT COUNT | loss DEVICE | exit-on-loss DEVICE")
    exit(2)
}
