import Foundation

/// How two vectors are compared. Both are reported as distances (smaller is nearer) so that one
/// ordering rule (distance, then lower id) holds for every metric.
public enum Metric: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    /// `1 - cos(q, x)`; a zero vector has cosine 0 with everything.
    case cosine = 1
    /// Squared Euclidean distance `|q - x|^2`.
    case l2 = 2

    public var description: String {
        switch self {
        case .cosine: return "cosine"
        case .l2: return "l2"
        }
    }

    public init?(name: String) {
        switch name.lowercased() {
        case "cosine", "cos": self = .cosine
        case "l2", "euclidean": self = .l2
        default: return nil
        }
    }
}

/// On-disk element type of the rows. Only float32 exists in format version 1.
public enum ElementType: UInt32, Sendable, CustomStringConvertible {
    case float32 = 1

    public var description: String { "float32" }
    public var byteWidth: Int { 4 }
}

/// Layout of a generation file, format version 1 (see beand-store(5)). All integers little-endian.
///
/// ```
///   0  magic "BEANSTOR"          8   |  72 labelCount    u32
///   8  version          u32          |  76 authorCount   u32
///  12  headerSize       u32 (=192)   |  80 stringsOffset u64   88 stringsLength u64
///  16  checksum         u64          |  96 fingerprintOffset u64  104 fingerprintLength u64
///  24  fileLength       u64          | 112 metadataOffset u64 (count x 24 bytes)
///  32  generation       u64          | 120 normsOffset    u64 (count x float32, |x|^2)
///  40  createdNs        i64          | 128 rowsOffset     u64 (count x rowStride bytes)
///  48  dim              u32          | 136..<192 reserved, zero
///  52  elementType      u32          |
///  56  metric           u32          |
///  60  rowStride        u32          |
///  64  count            u64          |
/// ```
/// The checksum is XXH64 (seed 0) of bytes `24..<fileLength`: everything except the magic, the
/// version, the header size and the checksum itself, which are validated on their own.
enum StoreLayout {
    static let magic: [UInt8] = Array("BEANSTOR".utf8)
    static let version: UInt32 = 1
    static let headerSize = 192
    static let checksumStart = 24
    static let alignment = 64
    static let metadataRecordSize = 24
    static let maxDimension = 65_536
    static let maxStrings = 65_535
    static let maxStringBytes = 1_024
    static let maxFingerprintBytes = 1 << 20

    enum Offset {
        static let magic = 0, version = 8, headerSize = 12, checksum = 16, fileLength = 24
        static let generation = 32, createdNs = 40, dim = 48, elementType = 52, metric = 56
        static let rowStride = 60, count = 64, labelCount = 72, authorCount = 76
        static let stringsOffset = 80, stringsLength = 88, fingerprintOffset = 96
        static let fingerprintLength = 104, metadataOffset = 112, normsOffset = 120, rowsOffset = 128
        static let reserved = 136
    }

    static func alignUp(_ value: Int, _ to: Int = alignment) -> Int { (value + to - 1) / to * to }

    /// Bytes per row: `dim` floats rounded up to a whole 64-byte line, so every row starts on a
    /// cache line and SIMD loads over the zero padding stay exact.
    static func rowStride(dim: Int, element: ElementType = .float32) -> Int {
        alignUp(dim * element.byteWidth)
    }
}

/// One stored vector's bookkeeping.
public struct VectorMetadata: Sendable, Hashable {
    /// Index into the generation's label table.
    public var labelID: UInt32
    /// Index into the generation's author table (who added the vector).
    public var authorID: UInt32
    /// The crop or source the vector was computed from, as the caller numbers them.
    public var sourceID: UInt64
    /// Wall-clock time the vector was added, nanoseconds since the Unix epoch.
    public var addedNs: Int64

    public init(labelID: UInt32, authorID: UInt32, sourceID: UInt64, addedNs: Int64) {
        self.labelID = labelID
        self.authorID = authorID
        self.sourceID = sourceID
        self.addedNs = addedNs
    }
}

/// XXH64 (Yann Collet's xxHash, 64-bit variant), seed 0: fast enough to check a 512 MB generation
/// at load without dominating reload time.
enum XXH64 {
    private static let p1: UInt64 = 0x9E37_79B1_85EB_CA87
    private static let p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    private static let p3: UInt64 = 0x1656_67B1_9E37_79F9
    private static let p4: UInt64 = 0x85EB_CA77_C2B2_AE63
    private static let p5: UInt64 = 0x27D4_EB2F_1656_67C5

    @inline(__always) private static func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
    @inline(__always) private static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        rotl(acc &+ input &* p2, 31) &* p1
    }
    @inline(__always) private static func merge(_ acc: UInt64, _ val: UInt64) -> UInt64 {
        (acc ^ round(0, val)) &* p1 &+ p4
    }

    static func hash(_ bytes: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        let length = bytes.count
        guard let base = bytes.baseAddress else { return avalanche(seed &+ p5) }
        var i = 0
        var h: UInt64
        if length >= 32 {
            var v1 = seed &+ p1 &+ p2, v2 = seed &+ p2, v3 = seed, v4 = seed &- p1
            while i + 32 <= length {
                v1 = round(v1, base.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian)
                v2 = round(v2, base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self).littleEndian)
                v3 = round(v3, base.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self).littleEndian)
                v4 = round(v4, base.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self).littleEndian)
                i += 32
            }
            h = rotl(v1, 1) &+ rotl(v2, 7) &+ rotl(v3, 12) &+ rotl(v4, 18)
            h = merge(h, v1); h = merge(h, v2); h = merge(h, v3); h = merge(h, v4)
        } else {
            h = seed &+ p5
        }
        h = h &+ UInt64(length)
        while i + 8 <= length {
            h ^= round(0, base.loadUnaligned(fromByteOffset: i, as: UInt64.self).littleEndian)
            h = rotl(h, 27) &* p1 &+ p4
            i += 8
        }
        if i + 4 <= length {
            h ^= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian) &* p1
            h = rotl(h, 23) &* p2 &+ p3
            i += 4
        }
        while i < length {
            h ^= UInt64(base.load(fromByteOffset: i, as: UInt8.self)) &* p5
            h = rotl(h, 11) &* p1
            i += 1
        }
        return avalanche(h)
    }

    private static func avalanche(_ value: UInt64) -> UInt64 {
        var h = value
        h ^= h >> 33; h = h &* p2
        h ^= h >> 29; h = h &* p3
        h ^= h >> 32
        return h
    }
}
