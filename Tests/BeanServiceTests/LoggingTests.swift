import Logging
import Testing
@testable import BeanService

@Test(arguments: [
    ("bean.score", "BEAN_SCORE"),
    ("camera", "CAMERA"),
    ("frame-rate", "FRAME_RATE"),
    ("Mixed.Case key", "MIXED_CASE_KEY"),
    ("3d", "META_3D"),
    ("_private", "META__PRIVATE"),
    ("", "META"),
    ("message", "META_MESSAGE"),
    ("priority", "META_PRIORITY"),
    ("syslog_identifier", "META_SYSLOG_IDENTIFIER"),
    ("coredump_x", "META_COREDUMP_X"),
    ("café", "CAF__"),
])
func journalFieldNames(key: String, expected: String) {
    let name = JournalFieldName.mapping(key)
    #expect(name == expected)
    #expect(JournalFieldName.isValid(name))
}

@Test func longKeysAreTruncatedToValidNames() {
    let name = JournalFieldName.mapping(String(repeating: "k", count: 100))
    #expect(name.utf8.count == 64)
    #expect(JournalFieldName.isValid(name))
}

@Test func journalFieldsCarryIdentifierPriorityAndMessageID() {
    let record = LogRecord(level: .warning, label: "beand", message: "reload failed",
                           metadata: [("bean.score", "0.25"), ("message_id", BeandMessageID.reloadFailed.rawValue),
                                      ("priority", "high")],
                           file: "Daemon.swift", function: "reload()", line: 12)
    let fields = JournaldLogSink.fields(for: record)
    func value(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }
    #expect(value("MESSAGE") == ["reload failed"])
    #expect(value("PRIORITY") == ["4"])
    #expect(value("SYSLOG_IDENTIFIER") == ["beand"])
    #expect(value("MESSAGE_ID") == ["44141eac83dd402486d3d8c4d3758fef"])
    #expect(value("BEAN_SCORE") == ["0.25"])
    #expect(value("META_PRIORITY") == ["high"])
    #expect(fields.allSatisfy { JournalFieldName.isValid($0.name) })
}

@Test func messageIDsAreDistinct128BitHex() {
    let ids = BeandMessageID.allCases.map(\.rawValue)
    #expect(Set(ids).count == ids.count)
    #expect(ids.allSatisfy(JournaldLogSink.isMessageID))
}

@Test func nestedMetadataIsFlattenedToDottedKeys() {
    var out: [(key: String, value: String)] = []
    BeandLogHandler.flatten(["bean": ["score": "0.5", "id": "7"], "camera": "cam0"], prefix: "", into: &out)
    out.sort { $0.key < $1.key }
    #expect(out.map(\.key) == ["bean.id", "bean.score", "camera"])
}

@Test func priorities() {
    #expect([Logger.Level.trace, .debug, .info, .notice, .warning, .error, .critical].map(JournaldLogSink.priority)
        == [7, 7, 6, 5, 4, 3, 2])
}

@Test func livenessNeedsEveryLoop() {
    let registry = LivenessRegistry(beatInterval: .milliseconds(100))
    let a = registry.register("a")
    let b = registry.register("b")
    a.beat(); b.beat()
    #expect(registry.stalledSinceLastCheck().isEmpty)
    a.beat()
    #expect(registry.stalledSinceLastCheck() == ["b"])
    #expect(registry.stalledSinceLastCheck() == ["a", "b"])
    b.unregister()
    a.beat()
    #expect(registry.stalledSinceLastCheck().isEmpty)
}
