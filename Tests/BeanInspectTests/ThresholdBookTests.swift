import BeanCore
import Foundation
import Testing
@testable import BeanInspect

@Suite struct ThresholdBookTests {
    let defaults = Thresholds(defaultRejectShare: 0.5, rejectShare: ["Black": 0.3], oneClassDistance: 0.8,
                              unknownDistance: 2)

    @Test func startsFromDefaultsWithoutFile() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let book = try ThresholdBook(stateDirectory: dir.path, defaults: defaults)
        #expect(book.thresholds == defaults)
        #expect(!book.loadedFromFile)
        #expect(!FileManager.default.fileExists(atPath: dir.file("thresholds")))
    }

    @Test func changesPersistAcrossReload() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var book = try ThresholdBook(stateDirectory: dir.path, defaults: defaults)
        let change = try book.set(.rejectShare("Broken"), to: 0.25)
        #expect(change.old == nil)
        #expect(change.new == 0.25)
        #expect("\(change)" == "threshold label:Broken changed from default to 0.25")
        try book.set(.unknownDistance, to: nil)
        try book.set(.defaultRejectShare, to: 0.6)
        try book.set(.rejectShare("Black"), to: nil)

        let reloaded = try ThresholdBook(stateDirectory: dir.path, defaults: Thresholds())
        #expect(reloaded.loadedFromFile)
        #expect(reloaded.thresholds == Thresholds(defaultRejectShare: 0.6, rejectShare: ["Broken": 0.25],
                                                  oneClassDistance: 0.8, unknownDistance: nil))
        // No temporary file left behind.
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path)
        #expect(names == ["thresholds"])
    }

    @Test func renderParseRoundTripsAwkwardValues() throws {
        let t = Thresholds(defaultRejectShare: 0.1 + 0.2, rejectShare: ["Über-ripe": 1, "Black": 1e-9],
                           oneClassDistance: 123456.789, unknownDistance: Double.leastNonzeroMagnitude)
        let parsed = try ThresholdBook.parse(ThresholdBook.render(t), path: "x", goodLabels: [.normal])
        #expect(parsed == t)
    }

    @Test func invalidChangesAreRefusedAndNothingIsWritten() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var book = try ThresholdBook(stateDirectory: dir.path, defaults: defaults)
        #expect(throws: ThresholdChangeError.self) { try book.set(.defaultRejectShare, to: 1.5) }
        #expect(throws: ThresholdChangeError.self) { try book.set(.defaultRejectShare, to: nil) }
        #expect(throws: ThresholdChangeError.self) { try book.set(.oneClassDistance, to: -1) }
        #expect(throws: ThresholdChangeError.self) { try book.set(.rejectShare(.normal), to: 0.5) }
        #expect(throws: ThresholdChangeError.self) { try book.set(.unknownDistance, to: .nan) }
        #expect(book.thresholds == defaults)
        #expect(!FileManager.default.fileExists(atPath: dir.file("thresholds")))
    }

    @Test func unwritableStateDirectoryLeavesThresholdsUnchanged() throws {
        var book = try ThresholdBook(stateDirectory: "/nonexistent-beand-state", defaults: defaults)
        do {
            try book.set(.defaultRejectShare, to: 0.7)
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("/nonexistent-beand-state/thresholds"))
        }
        #expect(book.thresholds == defaults)
    }

    @Test(arguments: [
        ("", "missing 'version = 1'"),
        ("version = 1\ndefault = 0.5\n", "missing required key 'one-class'"),
        ("version = 1\none-class = 1\n", "missing required key 'default'"),
        ("default = 0.5\n", ":1: the first setting must be 'version = 1'"),
        ("version = 2\n", ":1: unsupported version 2"),
        ("version = one\n", ":1: version must be an integer"),
        ("version = 1\ndefault = 0.5\none-class = 1\ngarbage\n", ":4: expected KEY = VALUE"),
        ("version = 1\ndefault = 0.5\none-class = 1\nspeed = 3\n", ":4: unknown key 'speed'"),
        ("version = 1\ndefault = 0.5\ndefault = 0.6\n", ":3: duplicate key 'default'"),
        ("version = 1\ndefault = half\n", ":2: value of 'default' is not a number"),
        ("version = 1\ndefault = 1.5\n", ":2: threshold default must be a vote share in (0, 1]"),
        ("version = 1\ndefault = 0.5\none-class = 1\nlabel:Normal = 0.5\n", ":4: label Normal is a good label"),
        ("version = 1\ndefault = 0.5\none-class = off\n", ":3: value of 'one-class' is not a number"),
        ("version = 1\ndefault = 0.5\none-class = nan\n", ":3: threshold one-class must be a finite distance"),
        ("version = 1\ndefault = 0.5\none-class = 1\nlabel: = 0.5\n", ":4: unknown key 'label:'"),
    ])
    func corruptFileNamesFileLineAndReason(content: String, expected: String) throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try dir.write(content, to: "thresholds")
        do {
            _ = try ThresholdBook(stateDirectory: dir.path, defaults: defaults)
            Issue.record("no error for \(content.debugDescription)")
        } catch {
            #expect(error.path == dir.file("thresholds"))
            let text = "\(error)"
            #expect(text.hasPrefix(dir.file("thresholds")))
            #expect(text.contains(expected), "\(text)")
        }
    }

    @Test func binaryGarbageIsRejectedAsNotUTF8() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try Data([0xff, 0xfe, 0x00, 0x80]).write(to: URL(fileURLWithPath: dir.file("thresholds")))
        #expect(throws: StateFileError(path: dir.file("thresholds"), reason: "not valid UTF-8")) {
            try ThresholdBook(stateDirectory: dir.path, defaults: defaults)
        }
    }

    @Test func commentsBlankLinesAndUnknownOffAreAccepted() throws {
        let text = "# hand edited\n\nversion = 1\r\n  default =0.4  \none-class= 2\nunknown = off\nlabel:Black = 0.2\n"
        let t = try ThresholdBook.parse(text, path: "x", goodLabels: [.normal])
        #expect(t == Thresholds(defaultRejectShare: 0.4, rejectShare: ["Black": 0.2], oneClassDistance: 2,
                                unknownDistance: nil))
    }

    @Test func invalidDefaultsAreReportedAtLoad() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        #expect(throws: StateFileError.self) {
            try ThresholdBook(stateDirectory: dir.path, defaults: Thresholds(defaultRejectShare: 3))
        }
    }

    @Test func keysAndValuesParseAsOperatorsTypeThem() {
        #expect(ThresholdKey("default") == .defaultRejectShare)
        #expect(ThresholdKey("label:Black") == .rejectShare("Black"))
        #expect(ThresholdKey("one-class") == .oneClassDistance)
        #expect(ThresholdKey("unknown") == .unknownDistance)
        #expect(ThresholdKey("label:") == nil)
        #expect(ThresholdKey("label:Two words") == nil)
        #expect(ThresholdKey("Black") == nil)
        #expect(ThresholdBook.parseValue("0.25") == .some(0.25))
        #expect(ThresholdBook.parseValue("off") == .some(nil))
        #expect(ThresholdBook.parseValue("lots") == nil)
    }
}

@Suite struct AtomicFileTests {
    @Test func replacesContentAndLeavesNoTemporary() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        try AtomicFile.write("one\n", to: dir.file("state"))
        try AtomicFile.write("two\n", to: dir.file("state"))
        #expect(try AtomicFile.read(dir.file("state")) == "two\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["state"])
    }

    @Test func missingFileReadsAsNilAndOversizeIsAnError() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        #expect(try AtomicFile.read(dir.file("absent")) == nil)
        try dir.write(String(repeating: "x", count: 5000), to: "big")
        #expect(throws: StateFileError.self) { try AtomicFile.read(dir.file("big"), limit: 4096) }
    }

    @Test func writeIntoMissingDirectoryNamesThePath() {
        do {
            try AtomicFile.write("x", to: "/nonexistent-beand-dir/state")
            Issue.record("no error")
        } catch {
            #expect(error.path.hasPrefix("/nonexistent-beand-dir/state"))
            #expect(error.reason.contains("No such file or directory"))
        }
    }
}
