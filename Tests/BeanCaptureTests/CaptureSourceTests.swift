import BeanCore
import Testing
@testable import BeanCapture

@Suite struct CaptureSourceTests {
    @Test func parsesTheThreeSchemes() throws {
        #expect(try SourceURI(parsing: "v4l2:/dev/video0") == .v4l2(device: "/dev/video0"))
        #expect(try SourceURI(parsing: "v4l2:usb-046d_C920_AB12-video-index0") == .v4l2(device: "usb-046d_C920_AB12-video-index0"))
        #expect(try SourceURI(parsing: "replay:/srv/frames") == .replay(directory: "/srv/frames"))
        #expect(try SourceURI(parsing: "belt:/usr/share/beand/tray.jpg") == .belt(photo: "/usr/share/beand/tray.jpg"))
        #expect(try SourceURI(parsing: "belt:a:b.png") == .belt(photo: "a:b.png"))
        #expect(SourceURI.replay(directory: "/x").description == "replay:/x")
    }

    @Test func rejectsMalformedSources() {
        for bad in ["/dev/video0", "rtsp://cam", "v4l2:", ""] {
            let error = #expect(throws: SourceURIError.self) { try SourceURI(parsing: bad) }
            #expect(error?.value == bad)
        }
    }

    @Test func makesEachKindOfSource() throws {
        let dir = TemporaryDirectory()
        defer { dir.cleanup() }
        let photo = syntheticFrame(width: 16, height: 12) { x, _ in (UInt8(x * 10), 0, 0) }
        try ImageCodec.write(photo, to: dir.file("tray.png"))

        var belt = CaptureSourceSettings(name: "sim", source: .belt(photo: dir.file("tray.png")))
        belt.width = 16; belt.height = 8; belt.fps = 10; belt.beltSpeed = 40; belt.loop = false; belt.pacing = .unpaced
        let sim = try belt.makeSource()
        #expect(sim is BeltSimulator && sim.name == "sim")
        var count = 0
        while try sim.nextFrame() != nil { count += 1 }
        #expect(count == (sim as? BeltSimulator)?.framesPerPass)

        var replay = CaptureSourceSettings(name: "rp", source: .replay(directory: dir.path))
        replay.loop = false; replay.pacing = .unpaced
        let source = try replay.makeSource()
        #expect(try source.nextFrame()?.pixels == photo.pixels)
        #expect(try source.nextFrame() == nil)

        let camera = try CaptureSourceSettings(name: "c", source: .v4l2(device: "/dev/video0")).makeSource()
        #expect((camera as? V4L2Camera)?.settings.device == "/dev/video0")

        let missing = CaptureSourceSettings(name: "m", source: .belt(photo: dir.file("none.jpg")))
        let error = #expect(throws: ImageCodecError.self) { try missing.makeSource() }
        #expect(error?.file == dir.file("none.jpg"))
    }
}
