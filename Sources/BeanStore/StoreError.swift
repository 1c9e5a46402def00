/// Why a store file or directory was refused, always with the path it concerns.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }

    public enum Reason: Sendable, Equatable, CustomStringConvertible {
        // I/O
        case cannotOpen(errno: Int32)
        case cannotMap(errno: Int32)
        case ioFailure(operation: String, errno: Int32)
        // Header
        case truncatedHeader(fileSize: Int)
        case badMagic
        case unsupportedVersion(UInt32)
        case badHeaderSize(UInt32)
        case fileLengthMismatch(header: UInt64, actual: Int)
        case checksumMismatch(stored: UInt64, computed: UInt64)
        case reservedBytesNotZero(offset: Int)
        case zeroDimension
        case dimensionTooLarge(Int)
        case unsupportedElementType(UInt32)
        case unknownMetric(UInt32)
        case badRowStride(stride: Int, expected: Int)
        case countBeyondFileSize(count: UInt64, fileSize: Int)
        // Sections
        case misalignedSection(name: String, offset: UInt64)
        case sectionOutOfOrder(name: String, offset: UInt64, minimum: UInt64)
        case sectionBeyondFile(name: String, end: UInt64, fileSize: Int)
        case trailingBytes(expectedEnd: UInt64, fileSize: Int)
        case tooManyStrings(labels: UInt32, authors: UInt32)
        case stringTableTruncated(entry: Int)
        case stringTableTrailingBytes(Int)
        case emptyLabel(index: Int)
        case invalidUTF8Label(index: Int)
        case duplicateLabel(String)
        case fingerprintTooLarge(UInt64)
        // Content
        case labelOutOfRange(row: Int, labelID: UInt32, labelCount: Int)
        case authorOutOfRange(row: Int, authorID: UInt32, authorCount: Int)
        case nonFiniteValue(row: Int, column: Int)
        case nonZeroPadding(row: Int)
        case normMismatch(row: Int, stored: Float, computed: Float)
        // Compatibility with the running encoder
        case dimensionMismatch(store: Int, encoder: Int)
        case fingerprintMismatch(store: String, encoder: String)
        // Store directory
        case noCurrentGeneration
        case badPointer(String)
        case pointerTargetMissing(String)
        case storeLocked
        case invalidInput(String)

        public var description: String {
            switch self {
            case .cannotOpen(let e): return "cannot open (\(errnoText(e)))"
            case .cannotMap(let e): return "cannot mmap (\(errnoText(e)))"
            case .ioFailure(let op, let e): return "\(op) failed (\(errnoText(e)))"
            case .truncatedHeader(let size):
                return "truncated header: file is \(size) bytes, the header needs \(StoreLayout.headerSize)"
            case .badMagic: return "wrong magic: not a beand store generation (expected \"BEANSTOR\")"
            case .unsupportedVersion(let v): return "unsupported format version \(v) (this build reads version \(StoreLayout.version))"
            case .badHeaderSize(let s): return "header size \(s) is not \(StoreLayout.headerSize)"
            case .fileLengthMismatch(let h, let a):
                return "file is \(a) bytes but its header says \(h) (truncated or appended to)"
            case .checksumMismatch(let s, let c):
                return "checksum mismatch: header says \(hex(s)), contents hash to \(hex(c))"
            case .reservedBytesNotZero(let o): return "reserved header byte at offset \(o) is not zero"
            case .zeroDimension: return "dimension is 0"
            case .dimensionTooLarge(let d): return "dimension \(d) exceeds the limit \(StoreLayout.maxDimension)"
            case .unsupportedElementType(let t): return "unsupported element type \(t) (only 1 = float32)"
            case .unknownMetric(let m): return "unknown metric \(m) (1 = cosine, 2 = l2)"
            case .badRowStride(let s, let e): return "row stride \(s) bytes, expected \(e) for this dimension"
            case .countBeyondFileSize(let c, let f): return "vector count \(c) needs more bytes than the file's \(f)"
            case .misalignedSection(let n, let o): return "\(n) section at offset \(o) is not 64-byte aligned"
            case .sectionOutOfOrder(let n, let o, let m): return "\(n) section at offset \(o) overlaps the previous section (must start at ≥ \(m))"
            case .sectionBeyondFile(let n, let e, let f): return "\(n) section ends at \(e), beyond the file's \(f) bytes"
            case .trailingBytes(let e, let f): return "rows end at \(e) but the file has \(f) bytes"
            case .tooManyStrings(let l, let a): return "string table claims \(l) labels and \(a) authors (limit \(StoreLayout.maxStrings) each)"
            case .stringTableTruncated(let i): return "string table truncated at entry \(i)"
            case .stringTableTrailingBytes(let n): return "string table has \(n) unused trailing bytes"
            case .emptyLabel(let i): return "label \(i) is empty"
            case .invalidUTF8Label(let i): return "label \(i) is not valid UTF-8"
            case .duplicateLabel(let l): return "label \"\(l)\" appears twice in the label table"
            case .fingerprintTooLarge(let n): return "encoder fingerprint of \(n) bytes exceeds the limit"
            case .labelOutOfRange(let r, let id, let n): return "row \(r): label id \(id) out of range (\(n) labels)"
            case .authorOutOfRange(let r, let id, let n): return "row \(r): author id \(id) out of range (\(n) authors)"
            case .nonFiniteValue(let r, let c): return "row \(r), column \(c): NaN or infinite value"
            case .nonZeroPadding(let r): return "row \(r): padding after the last element is not zero"
            case .normMismatch(let r, let s, let c): return "row \(r): stored squared norm \(s) does not match the row (\(c))"
            case .dimensionMismatch(let s, let e):
                return "incompatible store: vectors have dimension \(s) but the encoder produces \(e)"
            case .fingerprintMismatch(let s, let e):
                return "incompatible store: made for encoder \"\(s)\", the running encoder is \"\(e)\""
            case .noCurrentGeneration: return "no current generation (CURRENT pointer missing)"
            case .badPointer(let c): return "CURRENT pointer is malformed: \"\(c)\""
            case .pointerTargetMissing(let n): return "CURRENT points to \(n), which does not exist"
            case .storeLocked: return "another writer holds the store lock"
            case .invalidInput(let m): return m
            }
        }
    }
}

private func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }

func errnoText(_ e: Int32) -> String {
    guard let s = strerror(e) else { return "errno \(e)" }
    return "\(String(cString: s)), errno \(e)"
}

#if canImport(Glibc)
import Glibc
#endif
