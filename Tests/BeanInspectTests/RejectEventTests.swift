import BeanCore
import Foundation
import Testing
@testable import BeanInspect

@Suite struct RejectEventTests {
    private func record(eject: Bool = true) -> BeanRecord {
        var r = BeanRecord(id: 17, camera: "cam \"0\"\n", frameSequence: 99, captured: MonotonicInstant(nanoseconds: 5_000_000),
                           lane: 2, ejectAt: MonotonicInstant(nanoseconds: 9_000_000))
        let decision = Decision(verdict: .reject, eject: eject, label: "Black", score: 0.75, reason: .vote)
        r.apply(decision, neighbors: [Neighbor(label: "Black", distance: 0.125, vectorID: 4711),
                                      Neighbor(label: "Normal", distance: .infinity, vectorID: 3)],
                at: MonotonicInstant(nanoseconds: 7_000_000))
        return r
    }

    @Test func onlyEjectedBeansBecomeEvents() {
        #expect(RejectEvent(record: record(eject: false)) == nil)
        #expect(RejectEvent(record: BeanRecord(id: 1, camera: "c", frameSequence: 1, captured: .now())) == nil)
        #expect(RejectEvent(record: record()) != nil)
    }

    @Test func jsonLineIsValidJSONWithTheSchemaFields() throws {
        let event = try #require(RejectEvent(record: record(), unixMicroseconds: 1_700_000_000_000_000))
        let line = event.jsonLine(seq: 42)
        #expect(line.hasSuffix("}\n"))
        #expect(!line.dropLast().contains("\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["type"] as? String == "reject")
        #expect((object["seq"] as? NSNumber)?.uint64Value == 42)
        #expect((object["bean_id"] as? NSNumber)?.uint64Value == 17)
        #expect(object["camera"] as? String == "cam \"0\"\n")
        #expect((object["frame_seq"] as? NSNumber)?.intValue == 99)
        #expect((object["lane"] as? NSNumber)?.intValue == 2)
        #expect(object["verdict"] as? String == "reject")
        #expect(object["reason"] as? String == "vote")
        #expect(object["label"] as? String == "Black")
        #expect((object["score"] as? NSNumber)?.doubleValue == 0.75)
        #expect((object["captured_mono_us"] as? NSNumber)?.intValue == 5_000)
        #expect((object["decided_mono_us"] as? NSNumber)?.intValue == 7_000)
        #expect((object["eject_at_mono_us"] as? NSNumber)?.intValue == 9_000)
        #expect((object["time_unix_us"] as? NSNumber)?.int64Value == 1_700_000_000_000_000)
        let neighbors = try #require(object["neighbors"] as? [[String: Any]])
        #expect(neighbors.count == 2)
        #expect(neighbors[0]["label"] as? String == "Black")
        #expect((neighbors[0]["distance"] as? NSNumber)?.doubleValue == 0.125)
        #expect((neighbors[0]["vector_id"] as? NSNumber)?.intValue == 4711)
        #expect(neighbors[1]["distance"] is NSNull)
        #expect(Set(object.keys) == ["type", "seq", "bean_id", "camera", "frame_seq", "lane", "verdict", "reason",
                                     "label", "score", "captured_mono_us", "decided_mono_us", "eject_at_mono_us",
                                     "time_unix_us", "neighbors", "crop"])
        #expect(object["crop"] is NSNull)
    }

    @Test func missingValuesAreNull() throws {
        var r = BeanRecord(id: 1, camera: "c", frameSequence: 1, captured: MonotonicInstant(nanoseconds: 0))
        r.apply(Decision(verdict: .unscored, eject: true, label: nil, score: nil, reason: .unscored), neighbors: [],
                at: MonotonicInstant(nanoseconds: 1))
        let event = try #require(RejectEvent(record: r))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(event.jsonLine(seq: 1).utf8)) as? [String: Any])
        #expect(object["lane"] is NSNull)
        #expect(object["label"] is NSNull)
        #expect(object["score"] is NSNull)
        #expect(object["eject_at_mono_us"] is NSNull)
        #expect((object["neighbors"] as? [Any])?.isEmpty == true)
    }

    @Test func controlCharactersAreEscaped() {
        #expect(JSONText.string("a\u{1}b\u{7f}\u{2028}é") == "\"a\\u0001b\\u007f\\u2028é\"")
    }

    @Test func journalFieldsCarryTheIssueFields() throws {
        let event = try #require(RejectEvent(record: record()))
        let fields = event.journalFieldDictionary
        #expect(fields["BEAN_ID"] == "17")
        #expect(fields["CAMERA"] == "cam \"0\"\n")
        #expect(fields["LANE"] == "2")
        #expect(fields["LABEL"] == "Black")
        #expect(fields["SCORE"] == "0.75")
        #expect(fields["FRAME_SEQ"] == "99")
        #expect(fields["VERDICT"] == "reject")
        let neighbors = try JSONSerialization.jsonObject(with: Data(try #require(fields["NEIGHBORS"]).utf8)) as? [Any]
        #expect(neighbors?.count == 2)
        #expect(event.journalFields.map(\.name) == ["BEAN_ID", "CAMERA", "LANE", "VERDICT", "REASON", "LABEL", "SCORE",
                                                    "NEIGHBORS", "FRAME_SEQ", "CROP"])
        #expect(event.journalMessage == "reject bean 17 cam \"0\"\n lane 2: Black (score 0.75, vote)")
    }
}
