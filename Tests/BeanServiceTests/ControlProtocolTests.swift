import Testing
@testable import BeanService
import BeanInspect

@Test func framerSplitsLinesAcrossChunks() {
    var framer = ControlLineFramer(maximumLineBytes: 16)
    framer.feed(Array("{\"a\":".utf8))
    #expect(framer.next() == nil)
    framer.feed(Array("1}\r\nxy\n".utf8))
    #expect(framer.next() == .line(Array("{\"a\":1}".utf8)))
    #expect(framer.next() == .line(Array("xy".utf8)))
    #expect(framer.next() == nil)
}

@Test func framerDiscardsOversizedLineAndKeepsTheNext() {
    var framer = ControlLineFramer(maximumLineBytes: 8)
    // Exactly at the limit (7 bytes + newline) passes.
    framer.feed(Array("1234567\n".utf8))
    #expect(framer.next() == .line(Array("1234567".utf8)))
    // One over: reported once, dropped up to its newline, even when it arrives in pieces.
    framer.feed(Array("12345678".utf8))
    #expect(framer.next() == .oversized)
    #expect(framer.next() == nil)
    framer.feed(Array(repeating: UInt8(ascii: "z"), count: 100))
    #expect(framer.next() == nil)
    framer.feed(Array("zz\nok\n".utf8))
    #expect(framer.next() == .line(Array("ok".utf8)))
    // Oversized line and the next line in one chunk.
    framer.feed(Array("abcdefghijklmnop\nnext\n".utf8))
    #expect(framer.next() == .oversized)
    #expect(framer.next() == .line(Array("next".utf8)))
    #expect(framer.next() == nil)
}

@Test func framerReportsPartialLineAtEnd() {
    var framer = ControlLineFramer()
    framer.feed(Array("{\"command\":\"pi".utf8))
    #expect(framer.next() == nil)
    #expect(framer.finish() == .incomplete)
    var blank = ControlLineFramer()
    blank.feed(Array("  ".utf8))
    #expect(blank.finish() == nil)
}

private func decodeError(_ text: String) -> String? {
    if case .failure(let failure) = ControlProtocol.decodeRequest(Array(text.utf8)) { return failure.message }
    return nil
}

@Test func requestDecoding() throws {
    #expect(try ControlProtocol.decodeRequest(Array(#"{"command":"ping"}"#.utf8)).get() == ControlRequest(command: "ping"))
    #expect(try ControlProtocol.decodeRequest(Array(#"{"proto":1,"command":"status","x":[1,2.5,null]}"#.utf8)).get()
        == ControlRequest(command: "status", arguments: [("x", .array([.int(1), .double(2.5), .null]))]))
    #expect(decodeError(#"{"command":"ping","proto":2}"#) == "unsupported protocol version 2")
    #expect(decodeError(#"{"command":"ping","proto":"1"}"#) == #"unsupported protocol version "1""#)
    #expect(decodeError(#"{"proto":1}"#) == #"request has no "command""#)
    #expect(decodeError(#"{"command":5}"#) == #""command" must be a string, got number"#)
    #expect(decodeError(#"["ping"]"#) == "request must be a JSON object, got array")
    #expect(decodeError(#"{"command":"ping""#) == "malformed JSON: unexpected end of line, expected ',' or '}' at byte 17")
    #expect(decodeError(#"{"command":"ping"} x"#) == "malformed JSON: unexpected 'x' after the JSON value at byte 19")
    #expect(decodeError(#"{"a":1,"a":2,"command":"ping"}"#) == "malformed JSON: duplicate key 'a' at byte 12")
    #expect(decodeError(String(repeating: "[", count: 100)) == "malformed JSON: nesting deeper than 64 at byte 64")
}

@Test func binaryGarbageIsAnErrorNotACrash() {
    var generator = SystemRandomNumberGenerator()
    for _ in 0..<500 {
        let bytes = (0..<Int.random(in: 0..<64, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        _ = ControlProtocol.decodeRequest(bytes)
    }
    if case .failure(let failure) = ControlProtocol.decodeRequest([0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D]) {
        #expect(failure.message == "malformed JSON: string is not valid UTF-8 at byte 5")
    } else {
        Issue.record("invalid UTF-8 accepted")
    }
}

@Test func responsesAreOneLineJSON() throws {
    let ok = ControlProtocol.successLine(command: "ping", result: .object([("pong", .bool(true))]))
    #expect(ok == "{\"ok\":true,\"proto\":1,\"command\":\"ping\",\"result\":{\"pong\":true}}\n")
    let failure = ControlProtocol.failureLine(ControlFailure("bad\nthing \"x\""))
    #expect(failure == "{\"ok\":false,\"proto\":1,\"error\":\"bad thing \\\"x\\\"\"}\n")
    // Round trip through the parser.
    let value = try JSONParser.parse(Array(ok.dropLast().utf8))
    #expect(value["result"]?["pong"] == .bool(true))
    #expect(JSONValue.string("a\u{1}\u{2028}").serialized == "\"a\\u0001\\u2028\"")
}

@Test func commandTableRejectsUnknownCommandsAndArguments() {
    let table = ControlCommandTable([ControlCommand(name: "ping", access: .readOnly) { _, done in done(.success(.null)) }])
    if case .failure(let failure) = table.resolve(ControlRequest(command: "pong")) {
        #expect(failure.message == #"unknown command "pong" (known: ping)"#)
    } else { Issue.record("unknown command resolved") }
    if case .failure(let failure) = table.resolve(ControlRequest(command: "ping", arguments: [("force", .bool(true))])) {
        #expect(failure.message == #"unknown argument "force" for command ping"#)
    } else { Issue.record("unknown argument accepted") }
}

@Test func adminPolicy() {
    // uid 0 always; gid match from SO_PEERCRED; otherwise the group database decides.
    let policy = AdminPolicy(adminGroupID: 4242)
    #expect(policy.allows(PeerCredentials(pid: 1, uid: 0, gid: 0)))
    #expect(policy.allows(PeerCredentials(pid: 1, uid: 65534, gid: 4242)))
    #expect(!policy.allows(PeerCredentials(pid: 1, uid: 65534, gid: 65534)))
}

@Test func statusJSONHasNullsWithoutEngines() throws {
    var config = DaemonConfig()
    config.cameras = [CameraConfig(name: "cam0", source: .v4l2(device: "/dev/video0"))]
    let registry = StatusRegistry(config: config)
    let json = registry.json(version: "0.1.0")
    #expect(json["beans_total"] == .null)
    #expect(json["beans_per_s"] == .null)
    #expect(json["cameras"] == .array([.object([("name", .string("cam0")), ("state", .null), ("fps", .null),
                                                ("frames", .null), ("drops", .null),
                                                ("tracks_lost_before_line", .null), ("tracks_born_past_line", .null)])]))
    for key in ["scoring", "rejects_by_label", "unscored_total", "unknown_total", "latency_ms", "queues", "policy"] {
        #expect(json[key] == .null, "\(key) is null without a pipeline")
    }
    #expect(json["store"]?["generation"] == .null)
    #expect(json["encoder"]?["model"] == .string("/var/lib/beand/encoder.onnx"))
    #expect(registry.statusLine().hasSuffix("; beans/s n/a; rejects n/a; cameras up n/a of 1"))
    registry.update { $0.beansPerSecond = 12.34; $0.rejectsTotal = 3; $0.cameras[0].state = "streaming" }
    #expect(registry.statusLine().hasSuffix("; beans/s 12.3; rejects 3; cameras up 1 of 1"))
    registry.update {
        $0.scoring = "fail-safe: encoder model /m.onnx: missing"
        $0.inspection = DaemonStatus.Inspection(
            rejectsByLabel: ["Black": 2], acceptedTotal: 5, unscoredTotal: 4, unknownTotal: 0,
            latencyP50Milliseconds: 3.2, latencyP99Milliseconds: 17.25, queues: [], lostOutcomes: 0, visionErrors: 0,
            scoringErrors: 0)
    }
    #expect(registry.statusLine().hasSuffix("; cameras up 1 of 1; unscored 4; p99 17.2 ms; FAIL-SAFE (no encoder or store)"))
    let filled = registry.json(version: "0.1.0")
    #expect(filled["rejects_by_label"] == .object([("Black", .int(2))]))
    #expect(filled["latency_ms"]?["p99"] == .double(17.25))
    #expect(StatusRegistry.duration(3725) == "1h02m05s")
}

/// The policy in force, as `status` shows it: mode, k, the thresholds after any set-threshold.
@Test func statusShowsThePolicyInForce() throws {
    let registry = StatusRegistry(config: DaemonConfig())
    let policy = try DecisionPolicy(mode: .score, k: 64, thresholds: Thresholds(defaultRejectShare: 0.62, rejectShare: ["Insect": 0.2]))
    registry.update { $0.policy = policy; $0.reportedNeighbors = 8 }
    let json = try #require(registry.json(version: "0.1.0")["policy"])
    #expect(json == .object([
        ("mode", .string("score")), ("k", .int(64)), ("good_labels", .array([.string("Normal")])),
        ("reject_share", .double(0.62)), ("label_reject_shares", .object([("Insect", .double(0.2))])),
        ("one_class_distance", .double(1.0)), ("unknown_distance", .null), ("unknown_action", .string("reject")),
        ("reported_neighbors", .int(8)),
    ]))
}
