#if canImport(Glibc)
import Glibc
#endif
import BeanInspect
import Testing
@testable import BeanService

/// A pipeline whose encoder, store and camera source are all missing: it must start anyway,
/// report each problem by name, keep set-threshold working, and drain.
@Test func pipelineWithoutEnginesReportsFailSafeAndDrains() async throws {
    let directory = try makeRejectTestDirectory()
    defer { _ = system("rm -rf '\(directory)'") }
    var config = DaemonConfig()
    config.daemon.stateDirectory = directory
    config.encoder.model = "/nonexistent/enc.onnx"
    config.store.path = "/nonexistent/store"
    config.cameras = [CameraConfig(name: "cam0", source: .replay(directory: "/nonexistent/frames"))]
    let status = StatusRegistry(config: config)
    let pipeline = Pipeline(config: config, status: status, liveness: LivenessRegistry(beatInterval: .seconds(1)),
                            publishReject: { _ in })
    pipeline.start()
    try await Task.sleep(for: .milliseconds(500))
    let snapshot = status.snapshot()
    #expect(snapshot.scoring?.hasPrefix("fail-safe: encoder model /nonexistent/enc.onnx") == true, "\(snapshot.scoring ?? "nil")")
    #expect(snapshot.cameras.first?.state == "failed")
    #expect(snapshot.encoder.fingerprint == nil && snapshot.store.generation == nil)
    #expect(snapshot.beansTotal == 0)
    #expect(status.statusLine().hasSuffix("; FAIL-SAFE (no encoder or store)"))

    #expect(throws: (any Error).self) { try pipeline.setThreshold(key: "colour", value: "0.5") }
    #expect(throws: (any Error).self) { try pipeline.setThreshold(key: "default", value: "1.5") }
    #expect(throws: (any Error).self) { try pipeline.setThreshold(key: "default", value: "lots") }
    let (change, note) = try pipeline.setThreshold(key: "label:Black", value: "0.4")
    #expect(change.old == nil && change.new == 0.4)
    #expect(note == nil, "below the default share a label threshold adds rejects in score mode")
    // The daemon says when a value cannot change its decisions in its mode (score, the default).
    let (_, above) = try pipeline.setThreshold(key: "label:Black", value: "0.7")
    #expect(above?.contains("at or above the default reject share (0.5) it changes nothing") == true, "\(above ?? "nil")")
    let (_, oneClass) = try pipeline.setThreshold(key: "one-class", value: "0.4")
    #expect(oneClass?.contains("one-class mode only") == true, "\(oneClass ?? "nil")")
    let file = try #require(try AtomicFile.read(directory + "/thresholds"))
    #expect(file.contains("label:Black"))

    // A reload still cannot score: it fails naming the model, and the pipeline keeps running.
    #expect(throws: (any Error).self) { try pipeline.apply(config, previous: config) }
    let clock = ContinuousClock()
    let started = clock.now
    pipeline.drain(until: clock.now + .seconds(2))
    #expect(clock.now - started < .seconds(2))
}
