import Foundation
import Testing
@testable import BeanStore

/// A valid generation file's bytes, edited in place; `restamp()` recomputes the checksum so the
/// edit reaches the semantic checks behind it.
struct EditableGeneration {
    var bytes: [UInt8]
    typealias O = StoreLayout.Offset

    func u32(_ o: Int) -> UInt32 { bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt32.self) } }
    func u64(_ o: Int) -> UInt64 { bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self) } }
    mutating func set32(_ o: Int, _ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.replaceSubrange(o..<(o + 4), with: $0) } }
    mutating func set64(_ o: Int, _ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.replaceSubrange(o..<(o + 8), with: $0) } }
    mutating func setFloat(_ o: Int, _ v: Float) { set32(o, v.bitPattern) }

    mutating func restamp() {
        set64(O.fileLength, UInt64(bytes.count))
        let sum = bytes.withUnsafeBytes { XXH64.hash(UnsafeRawBufferPointer(rebasing: $0[StoreLayout.checksumStart...])) }
        set64(O.checksum, sum)
    }

    var rowsOffset: Int { Int(u64(O.rowsOffset)) }
    var normsOffset: Int { Int(u64(O.normsOffset)) }
    var metadataOffset: Int { Int(u64(O.metadataOffset)) }
    var stride: Int { Int(u32(O.rowStride)) }

    /// Rewrites the string table in its slot (it must fit before the fingerprint section).
    mutating func replaceStrings(labels: [[UInt8]], authors: [[UInt8]]) {
        var table: [UInt8] = []
        for s in labels + authors { table += [UInt8(s.count & 0xff), UInt8(s.count >> 8)] + s }
        let start = Int(u64(O.stringsOffset))
        precondition(start + table.count <= Int(u64(O.fingerprintOffset)))
        bytes.replaceSubrange(start..<(start + table.count), with: table)
        set64(O.stringsLength, UInt64(table.count))
        set32(O.labelCount, UInt32(labels.count))
        set32(O.authorCount, UInt32(authors.count))
    }
}

struct CorruptCase: Sendable {
    var name: String
    var identity: EncoderIdentity? = nil
    var edit: @Sendable (inout EditableGeneration) -> Void
    var expected: @Sendable (StoreError.Reason) -> Bool
}

@Suite("Corrupt and incompatible generation files")
struct CorruptFileTests {
    static let dim = 10  // not a multiple of 16, so rows carry padding
    static let count = 12

    static func validFile() throws -> (TemporaryDirectory, [UInt8]) {
        let dir = TemporaryDirectory("corrupt")
        let published = try StoreWriter(directory: dir.path).publish(try makeDraft(dim: dim, count: count, seed: 3))
        return (dir, readBytes(published.path))
    }

    static let cases: [CorruptCase] = {
        typealias O = StoreLayout.Offset
        var c: [CorruptCase] = []
        func add(_ name: String, identity: EncoderIdentity? = nil, _ edit: @escaping @Sendable (inout EditableGeneration) -> Void,
                 _ expected: @escaping @Sendable (StoreError.Reason) -> Bool) {
            c.append(CorruptCase(name: name, identity: identity, edit: edit, expected: expected))
        }
        add("empty file", { $0.bytes = [] }) { if case .truncatedHeader(0) = $0 { true } else { false } }
        add("truncated header", { $0.bytes.removeSubrange(100...) }) { if case .truncatedHeader(100) = $0 { true } else { false } }
        add("wrong magic", { $0.bytes[0] = UInt8(ascii: "X") }) { $0 == .badMagic }
        add("future version", { $0.set32(O.version, 2) }) { $0 == .unsupportedVersion(2) }
        add("header size", { $0.set32(O.headerSize, 128) }) { $0 == .badHeaderSize(128) }
        add("truncated body", { $0.bytes.removeLast(64) }) { if case .fileLengthMismatch = $0 { true } else { false } }
        add("flipped row byte", { $0.bytes[$0.rowsOffset + 5] ^= 0x40 }) { if case .checksumMismatch = $0 { true } else { false } }
        add("reserved byte", { $0.bytes[O.reserved + 3] = 1; $0.restamp() }) { $0 == .reservedBytesNotZero(offset: O.reserved + 3) }
        add("dimension 0", { $0.set32(O.dim, 0); $0.restamp() }) { $0 == .zeroDimension }
        add("dimension huge", { $0.set32(O.dim, 1 << 20); $0.restamp() }) { $0 == .dimensionTooLarge(1 << 20) }
        add("element type", { $0.set32(O.elementType, 7); $0.restamp() }) { $0 == .unsupportedElementType(7) }
        add("metric", { $0.set32(O.metric, 9); $0.restamp() }) { $0 == .unknownMetric(9) }
        add("row stride", { $0.set32(O.rowStride, 40); $0.restamp() }) { $0 == .badRowStride(stride: 40, expected: 64) }
        add("count beyond file size", { $0.set64(O.count, 1 << 40); $0.restamp() }) { if case .countBeyondFileSize = $0 { true } else { false } }
        add("count overflows", { $0.set64(O.count, .max / 2); $0.restamp() }) { if case .countBeyondFileSize = $0 { true } else { false } }
        add("misaligned rows", { $0.set64(O.rowsOffset, $0.u64(O.rowsOffset) + 4); $0.restamp() }) {
            if case .misalignedSection(name: "rows", _) = $0 { true } else { false }
        }
        add("overlapping sections", { $0.set64(O.metadataOffset, $0.u64(O.fingerprintOffset)); $0.restamp() }) {
            if case .sectionOutOfOrder(name: "metadata", _, _) = $0 { true } else { false }
        }
        add("section beyond file", { $0.set64(O.stringsLength, 1 << 40); $0.restamp() }) {
            if case .sectionBeyondFile(name: "string table", _, _) = $0 { true } else { false }
        }
        add("trailing bytes", { $0.bytes += [UInt8](repeating: 0, count: 64); $0.restamp() }) { if case .trailingBytes = $0 { true } else { false } }
        add("too many labels", { $0.set32(O.labelCount, 70_000); $0.restamp() }) { if case .tooManyStrings = $0 { true } else { false } }
        add("string table truncated", { $0.set32(O.labelCount, $0.u32(O.labelCount) + 1); $0.restamp() }) {
            if case .stringTableTruncated = $0 { true } else { false }
        }
        add("string table trailing bytes", { $0.set64(O.stringsLength, $0.u64(O.stringsLength) + 2); $0.restamp() }) {
            if case .stringTableTrailingBytes = $0 { true } else { false }
        }
        add("empty label", { $0.replaceStrings(labels: [[], Array("Black".utf8)], authors: [Array("tester".utf8)]); $0.restamp() }) {
            $0 == .emptyLabel(index: 0)
        }
        add("label not UTF-8", { $0.replaceStrings(labels: [[0xff, 0xfe], Array("Black".utf8)], authors: [Array("t".utf8)]); $0.restamp() }) {
            $0 == .invalidUTF8Label(index: 0)
        }
        add("duplicate label", { $0.replaceStrings(labels: [Array("Black".utf8), Array("Black".utf8)], authors: [Array("t".utf8)]); $0.restamp() }) {
            $0 == .duplicateLabel("Black")
        }
        add("fingerprint too large", { $0.set64(O.fingerprintLength, 1 << 21); $0.restamp() }) { $0 == .fingerprintTooLarge(1 << 21) }
        add("label id out of range", { $0.set32($0.metadataOffset + 3 * 24, 9); $0.restamp() }) {
            $0 == .labelOutOfRange(row: 3, labelID: 9, labelCount: 2)
        }
        add("author id out of range", { $0.set32($0.metadataOffset + 5 * 24 + 4, 4); $0.restamp() }) {
            $0 == .authorOutOfRange(row: 5, authorID: 4, authorCount: 1)
        }
        add("NaN row", { $0.setFloat($0.rowsOffset + 7 * $0.stride + 4 * 2, .nan); $0.restamp() }) { $0 == .nonFiniteValue(row: 7, column: 2) }
        add("infinite value", { $0.setFloat($0.rowsOffset + 1 * $0.stride + 4 * 9, -.infinity); $0.restamp() }) {
            $0 == .nonFiniteValue(row: 1, column: 9)
        }
        add("non-zero padding", { $0.setFloat($0.rowsOffset + 4 * $0.stride + 4 * 12, 1); $0.restamp() }) { $0 == .nonZeroPadding(row: 4) }
        add("stored norm wrong", { $0.setFloat($0.normsOffset + 4 * 6, 123); $0.restamp() }) {
            if case .normMismatch(row: 6, stored: 123, _) = $0 { true } else { false }
        }
        add("other encoder dimension", identity: EncoderIdentity(dimension: 128, fingerprint: "enc-v1"), { _ in }) {
            $0 == .dimensionMismatch(store: 10, encoder: 128)
        }
        add("other encoder fingerprint", identity: EncoderIdentity(dimension: 10, fingerprint: "enc-v2"), { _ in }) {
            $0 == .fingerprintMismatch(store: "enc-v1", encoder: "enc-v2")
        }
        return c
    }()

    @Test("every corrupt file is refused with its own message", arguments: 0..<cases.count)
    func refused(index: Int) throws {
        let (dir, valid) = try Self.validFile()
        defer { dir.remove() }
        let corrupt = Self.cases[index]
        var file = EditableGeneration(bytes: valid)
        corrupt.edit(&file)
        let path = dir.path + "/corrupt.bstore"
        writeBytes(file.bytes, path)
        do {
            _ = try StoreGeneration(path: path, expecting: corrupt.identity)
            Issue.record("\(corrupt.name): accepted")
        } catch let error as StoreError {
            #expect(error.path == path)
            #expect(corrupt.expected(error.reason), "\(corrupt.name): got \(error.reason)")
        }
    }

    @Test("at least 30 cases, all messages distinct")
    func messagesAreDistinct() throws {
        let (dir, valid) = try Self.validFile()
        defer { dir.remove() }
        var messages: [String] = []
        for corrupt in Self.cases {
            var file = EditableGeneration(bytes: valid)
            corrupt.edit(&file)
            let path = dir.path + "/c.bstore"
            writeBytes(file.bytes, path)
            do {
                _ = try StoreGeneration(path: path, expecting: corrupt.identity)
            } catch let error as StoreError {
                messages.append(error.reason.description)
            }
        }
        #expect(Self.cases.count >= 30)
        #expect(messages.count == Self.cases.count)
        #expect(Set(messages).count == messages.count, "duplicate messages: \(messages)")
    }

    @Test("the unedited file opens")
    func validOpens() throws {
        let (dir, valid) = try Self.validFile()
        defer { dir.remove() }
        writeBytes(valid, dir.path + "/ok.bstore")
        let g = try StoreGeneration(path: dir.path + "/ok.bstore", expecting: EncoderIdentity(dimension: 10, fingerprint: "enc-v1"))
        #expect(g.count == Self.count)
    }

    @Test("random byte damage with a fixed checksum never crashes the reader")
    func fuzzedBytes() throws {
        let (dir, valid) = try Self.validFile()
        defer { dir.remove() }
        var rng = TestRandom(seed: 99)
        var refused = 0
        for round in 0..<400 {
            var file = EditableGeneration(bytes: valid)
            if round % 4 == 0 {
                file.bytes.removeLast(Int(rng.next() % UInt64(file.bytes.count)))
            } else {
                for _ in 0..<(1 + rng.next() % 4) {
                    let at = StoreLayout.checksumStart + 8 + Int(rng.next() % UInt64(file.bytes.count - 32))
                    file.bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                }
                if round % 4 != 1 { file.restamp() }
            }
            let path = dir.path + "/fuzz.bstore"
            writeBytes(file.bytes, path)
            do { _ = try StoreGeneration(path: path) } catch is StoreError { refused += 1 }
        }
        #expect(refused > 100)
    }

    @Test("store directory pointer problems are named")
    func pointerErrors() throws {
        let dir = TemporaryDirectory("pointer")
        defer { dir.remove() }
        #expect(throws: StoreError(path: dir.path, reason: .noCurrentGeneration)) {
            try StoreDirectory.openCurrent(directory: dir.path)
        }
        writeBytes(Array("../../etc/passwd\n".utf8), dir.path + "/CURRENT")
        #expect(throws: StoreError(path: dir.path + "/CURRENT", reason: .badPointer("../../etc/passwd"))) {
            try StoreDirectory.openCurrent(directory: dir.path)
        }
        writeBytes(Array("gen-000000000007.bstore\n".utf8), dir.path + "/CURRENT")
        #expect(throws: StoreError(path: dir.path + "/CURRENT", reason: .pointerTargetMissing("gen-000000000007.bstore"))) {
            try StoreDirectory.openCurrent(directory: dir.path)
        }
    }
}
