import Foundation
import Testing
@testable import BeanService

private final class RecordingComponent: Reloadable, @unchecked Sendable {
    let reloadName = "recorder"
    var applied: [DaemonConfig] = []
    var refuse: String?
    var generation: UInt64? { 7 }

    func apply(_ new: DaemonConfig, previous: DaemonConfig) throws {
        if let refuse { throw ControlFailure(refuse) }
        applied.append(new)
    }
}

private func reload(_ daemon: Daemon) -> Result<UInt64?, ControlFailure> {
    let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) var outcome: Result<UInt64?, ControlFailure>?
    daemon.reload(trigger: .control) { result in
        outcome = result
        done.signal()
    }
    done.wait()
    return outcome ?? .failure(ControlFailure("no result"))
}

@Test func reloadAppliesNewConfigOrKeepsTheOld() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("beand-reload-\(getpid())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let path = directory.appendingPathComponent("beand.toml").path
    try "[store]\npath = \"/srv/a\"\n".write(toFile: path, atomically: true, encoding: .utf8)

    let daemon = Daemon(configPath: path, config: try ConfigLoader.load(path: path))
    let component = RecordingComponent()
    daemon.register(reloadable: component)

    try "[store]\npath = \"/srv/b\"\n".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(try reload(daemon).get() == 7)
    #expect(component.applied.map(\.store.path) == ["/srv/b"])
    #expect(daemon.currentConfig.store.path == "/srv/b")
    #expect(daemon.status.snapshot().store.path == "/srv/b")

    // Invalid file: error names file, line and key; nothing applied; old config stays.
    try "[store]\npath = \"relative\"\n".write(toFile: path, atomically: true, encoding: .utf8)
    guard case .failure(let failure) = reload(daemon) else { Issue.record("invalid config reloaded"); return }
    #expect(failure.message == "reload failed, previous configuration kept: \(path):2: key 'store.path': must be an absolute path, got 'relative'")
    #expect(component.applied.count == 1)
    #expect(daemon.currentConfig.store.path == "/srv/b")

    // A component that refuses fails the reload and the daemon keeps its config.
    try "[store]\npath = \"/srv/c\"\n".write(toFile: path, atomically: true, encoding: .utf8)
    component.refuse = "store generation 3 is corrupt"
    guard case .failure(let refused) = reload(daemon) else { Issue.record("refused reload succeeded"); return }
    #expect(refused.message == "reload failed, previous configuration kept: recorder: store generation 3 is corrupt")
    #expect(daemon.currentConfig.store.path == "/srv/b")
}

@Test func changedTablesAreNamed() {
    var new = DaemonConfig()
    new.control.idleTimeoutSeconds = 5
    new.cameras = [CameraConfig(name: "a", source: .belt(image: "/x.jpg"))]
    #expect(Daemon.changedTables(DaemonConfig(), new) == ["control", "camera"])
}

@Test func settingsFixedAtStartAreNamedForTheRestartWarning() {
    let old = DaemonConfig()
    var new = old
    new.control.idleTimeoutSeconds = 5
    new.encoder.maxWaitMilliseconds = 1
    new.inspect.ejectLeadMilliseconds = 5
    new.spool.queue = 8
    #expect(Daemon.changesNeedingRestart(old, new, changedTables: Daemon.changedTables(old, new))
        == ["control", "spool.directory/queue", "encoder.workers/max_batch/max_wait_ms", "inspect.queue/unscored/eject_lead_ms"])
    // Keys that a reload applies are not named.
    var reloadable = old
    reloadable.encoder.model = "/other.onnx"
    reloadable.inspect.k = 7
    reloadable.spool.maxBytes = 1 << 20
    #expect(Daemon.changesNeedingRestart(old, reloadable, changedTables: Daemon.changedTables(old, reloadable)).isEmpty)
}
