#if canImport(Glibc)
import Glibc
#endif

/// What the running encoder produces; a generation made for anything else is refused.
/// The fingerprint is opaque here: the encoder runtime computes it, the store only compares bytes.
public struct EncoderIdentity: Sendable, Hashable {
    public var dimension: Int
    public var fingerprint: [UInt8]

    public init(dimension: Int, fingerprint: [UInt8]) {
        self.dimension = dimension
        self.fingerprint = fingerprint
    }

    public init(dimension: Int, fingerprint: String) {
        self.init(dimension: dimension, fingerprint: Array(fingerprint.utf8))
    }
}

/// One immutable, validated, memory-mapped generation file. The mapping lives exactly as long as
/// this object: a query holds a strong reference for its duration, so a generation replaced under
/// a running daemon is unmapped only after the last in-flight query using it returns.
public final class StoreGeneration: @unchecked Sendable {
    // @unchecked: every stored property is immutable after init and the mapping is read-only.
    public let path: String
    public let generation: UInt64
    public let dimension: Int
    public let count: Int
    public let metric: Metric
    public let elementType: ElementType
    public let labels: [String]
    public let authors: [String]
    public let fingerprint: [UInt8]
    public let createdNs: Int64
    public let checksum: UInt64
    /// Device and inode of the file, to tell a re-published name from the file already mapped.
    public let fileID: FileID

    let mapping: UnsafeMutableRawPointer
    let mappedLength: Int
    /// The rows copied out of the mapping into anonymous memory backed by transparent huge pages
    /// (2 MB pages: no TLB miss and no prefetch stop every 4 KB of the scan); nil for an empty store.
    let scanCopy: HugePageBuffer?
    /// Row `i` starts at `rows + i * rowStrideFloats`; the padding after `dimension` is zero.
    let rows: UnsafePointer<Float>
    let rowStrideFloats: Int
    /// Squared norms as stored in the file.
    let squaredNorms: UnsafePointer<Float>
    let metadataBase: UnsafeRawPointer
    /// 1/|x| per row (0 for a zero row), computed at load for the cosine metric.
    let inverseNorms: [Float]
    let maxNorm: Double
    /// The bfloat16 copy the scan reads on CPUs with AVX512_BF16 (nil elsewhere, or when a value
    /// exceeds bfloat16's range); exact re-ranking still reads `rows`.
    let bfloat16: BFloat16Rows?

    public struct FileID: Sendable, Hashable {
        public var device: UInt64
        public var inode: UInt64
    }

    /// Opens, maps and fully validates a generation file. With `expecting`, a store made for
    /// another encoder (dimension or fingerprint) is refused too.
    public init(path: String, expecting identity: EncoderIdentity? = nil) throws {
        func fail(_ reason: StoreError.Reason) -> StoreError { StoreError(path: path, reason: reason) }

        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail(.cannotOpen(errno: errno)) }
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail(.ioFailure(operation: "fstat", errno: errno)) }
        let size = Int(st.st_size)
        guard size >= StoreLayout.headerSize else { throw fail(.truncatedHeader(fileSize: size)) }
        guard let map = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), map != MAP_FAILED else {
            throw fail(.cannotMap(errno: errno))
        }
        _ = madvise(map, size, MADV_WILLNEED)

        let parsed: ParsedGeneration
        do {
            parsed = try ParsedGeneration(bytes: UnsafeRawBufferPointer(start: map, count: size), identity: identity)
        } catch let reason as StoreError.Reason {
            munmap(map, size)
            throw fail(reason)
        } catch {
            munmap(map, size)
            throw error
        }

        self.path = path
        self.fileID = FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        self.mapping = map
        self.mappedLength = size
        self.generation = parsed.generation
        self.dimension = parsed.dimension
        self.count = parsed.count
        self.metric = parsed.metric
        self.elementType = .float32
        self.labels = parsed.labels
        self.authors = parsed.authors
        self.fingerprint = parsed.fingerprint
        self.createdNs = parsed.createdNs
        self.checksum = parsed.checksum
        self.rowStrideFloats = parsed.rowStride / 4
        let mappedRows = UnsafeRawPointer(map).advanced(by: parsed.rowsOffset)
        let rowBytes = parsed.count * parsed.rowStride
        let scanRows: UnsafePointer<Float>
        if rowBytes > 0, let copy = HugePageBuffer(byteCount: rowBytes) {
            copy.pointer.copyMemory(from: mappedRows, byteCount: rowBytes)
            // The scan reads the copy; let the kernel reclaim the file pages of the rows.
            let page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let start = (parsed.rowsOffset + page - 1) / page * page
            if start < size { _ = madvise(map + start, size - start, MADV_DONTNEED) }
            self.scanCopy = copy
            scanRows = UnsafeRawPointer(copy.pointer).assumingMemoryBound(to: Float.self)
        } else {
            self.scanCopy = nil
            scanRows = mappedRows.assumingMemoryBound(to: Float.self)
        }
        self.rows = scanRows
        self.squaredNorms = UnsafeRawPointer(map).advanced(by: parsed.normsOffset).assumingMemoryBound(to: Float.self)
        self.metadataBase = UnsafeRawPointer(map).advanced(by: parsed.metadataOffset)
        self.inverseNorms = parsed.inverseNorms
        self.maxNorm = parsed.maxNorm
        self.bfloat16 = BFloat16Rows(rows: scanRows, count: parsed.count, dimension: parsed.dimension,
                                     sourceStride: parsed.rowStride / 4, inverseNorms: parsed.inverseNorms)
    }

    deinit {
        munmap(mapping, mappedLength)
    }

    public var fingerprintText: String { describeFingerprint(fingerprint) }

    public func metadata(at row: Int) -> VectorMetadata {
        precondition(row >= 0 && row < count, "row \(row) out of range 0..<\(count)")
        let p = metadataBase.advanced(by: row * StoreLayout.metadataRecordSize)
        return VectorMetadata(
            labelID: p.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian,
            authorID: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self).littleEndian,
            sourceID: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian,
            addedNs: p.loadUnaligned(fromByteOffset: 16, as: Int64.self).littleEndian)
    }

    public func label(ofRow row: Int) -> String { labels[Int(metadata(at: row).labelID)] }

    /// Copies row `row` (exactly `dimension` values).
    public func vector(at row: Int) -> [Float] {
        precondition(row >= 0 && row < count, "row \(row) out of range 0..<\(count)")
        return Array(UnsafeBufferPointer(start: rows + row * rowStrideFloats, count: dimension))
    }

    /// Calls `body` with row `row` in place; the pointer is valid only inside `body`.
    public func withVector<R>(at row: Int, _ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        precondition(row >= 0 && row < count, "row \(row) out of range 0..<\(count)")
        return try withExtendedLifetime(self) {
            try body(UnsafeBufferPointer(start: rows + row * rowStrideFloats, count: dimension))
        }
    }

    /// Vector counts per label, in label-table order.
    public func labelCounts() -> [Int] {
        var counts = [Int](repeating: 0, count: labels.count)
        for row in 0..<count { counts[Int(metadata(at: row).labelID)] += 1 }
        return counts
    }
}

/// Anonymous memory aligned to 2 MB with MADV_HUGEPAGE, freed with the owning generation.
final class HugePageBuffer: @unchecked Sendable {
    // @unchecked: written once in the owner's init, read-only afterwards.
    let pointer: UnsafeMutableRawPointer
    private let base: UnsafeMutableRawPointer
    private let length: Int
    static let hugePage = 2 << 20

    init?(byteCount: Int) {
        let length = (byteCount + Self.hugePage - 1) / Self.hugePage * Self.hugePage + Self.hugePage
        guard let base = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              base != MAP_FAILED else { return nil }
        let aligned = (Int(bitPattern: base) + Self.hugePage - 1) / Self.hugePage * Self.hugePage
        self.base = base
        self.length = length
        self.pointer = UnsafeMutableRawPointer(bitPattern: aligned) ?? base
        _ = madvise(pointer, byteCount, 14 /* MADV_HUGEPAGE */)
    }

    deinit { munmap(base, length) }
}

func describeFingerprint(_ bytes: [UInt8]) -> String {
    if let text = String(validating: bytes, as: UTF8.self), text.allSatisfy({ !$0.isNewline }) {
        return text
    }
    return bytes.map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined()
}

/// The validation pass, separate from the mapping so that every refusal is a plain `Reason`.
struct ParsedGeneration {
    var generation: UInt64 = 0
    var createdNs: Int64 = 0
    var dimension = 0
    var count = 0
    var metric: Metric = .cosine
    var rowStride = 0
    var labels: [String] = []
    var authors: [String] = []
    var fingerprint: [UInt8] = []
    var checksum: UInt64 = 0
    var metadataOffset = 0
    var normsOffset = 0
    var rowsOffset = 0
    var inverseNorms: [Float] = []
    var maxNorm: Double = 0

    init(bytes: UnsafeRawBufferPointer, identity: EncoderIdentity?) throws {
        typealias O = StoreLayout.Offset
        typealias Reason = StoreError.Reason
        let size = bytes.count
        guard size >= StoreLayout.headerSize else { throw Reason.truncatedHeader(fileSize: size) }
        func u32(_ o: Int) -> UInt32 { bytes.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian }
        func u64(_ o: Int) -> UInt64 { bytes.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian }

        guard Array(bytes[0..<8]) == StoreLayout.magic else { throw Reason.badMagic }
        let version = u32(O.version)
        guard version == StoreLayout.version else { throw Reason.unsupportedVersion(version) }
        let headerSize = u32(O.headerSize)
        guard headerSize == UInt32(StoreLayout.headerSize) else { throw Reason.badHeaderSize(headerSize) }
        let fileLength = u64(O.fileLength)
        guard fileLength == UInt64(size) else { throw Reason.fileLengthMismatch(header: fileLength, actual: size) }
        let stored = u64(O.checksum)
        let computed = XXH64.hash(UnsafeRawBufferPointer(rebasing: bytes[StoreLayout.checksumStart...]))
        guard stored == computed else { throw Reason.checksumMismatch(stored: stored, computed: computed) }
        checksum = stored
        for o in O.reserved..<StoreLayout.headerSize where bytes[o] != 0 {
            throw Reason.reservedBytesNotZero(offset: o)
        }

        generation = u64(O.generation)
        createdNs = Int64(bitPattern: u64(O.createdNs))
        let dim = Int(u32(O.dim))
        guard dim > 0 else { throw Reason.zeroDimension }
        guard dim <= StoreLayout.maxDimension else { throw Reason.dimensionTooLarge(dim) }
        dimension = dim
        let element = u32(O.elementType)
        guard ElementType(rawValue: element) != nil else { throw Reason.unsupportedElementType(element) }
        let metricRaw = u32(O.metric)
        guard let m = Metric(rawValue: metricRaw) else { throw Reason.unknownMetric(metricRaw) }
        metric = m
        let stride = Int(u32(O.rowStride))
        let expectedStride = StoreLayout.rowStride(dim: dim)
        guard stride == expectedStride else { throw Reason.badRowStride(stride: stride, expected: expectedStride) }
        rowStride = stride

        let count64 = u64(O.count)
        let perRow = UInt64(stride + 4 + StoreLayout.metadataRecordSize)
        let (needed, overflow) = count64.multipliedReportingOverflow(by: perRow)
        guard !overflow, needed <= UInt64(size) else { throw Reason.countBeyondFileSize(count: count64, fileSize: size) }
        count = Int(count64)

        let labelCount = u32(O.labelCount), authorCount = u32(O.authorCount)
        guard labelCount <= UInt32(StoreLayout.maxStrings), authorCount <= UInt32(StoreLayout.maxStrings) else {
            throw Reason.tooManyStrings(labels: labelCount, authors: authorCount)
        }
        let fingerprintLength = u64(O.fingerprintLength)
        guard fingerprintLength <= UInt64(StoreLayout.maxFingerprintBytes) else {
            throw Reason.fingerprintTooLarge(fingerprintLength)
        }

        // Sections in file order; each 64-byte aligned, none overlapping, all inside the file.
        let sections: [(name: String, offset: UInt64, length: UInt64)] = [
            ("string table", u64(O.stringsOffset), u64(O.stringsLength)),
            ("fingerprint", u64(O.fingerprintOffset), fingerprintLength),
            ("metadata", u64(O.metadataOffset), count64 * UInt64(StoreLayout.metadataRecordSize)),
            ("norms", u64(O.normsOffset), count64 * 4),
            ("rows", u64(O.rowsOffset), count64 * UInt64(stride)),
        ]
        var minimum = UInt64(StoreLayout.headerSize)
        for section in sections {
            guard section.offset % UInt64(StoreLayout.alignment) == 0 else {
                throw Reason.misalignedSection(name: section.name, offset: section.offset)
            }
            guard section.offset >= minimum else {
                throw Reason.sectionOutOfOrder(name: section.name, offset: section.offset, minimum: minimum)
            }
            let (end, endOverflow) = section.offset.addingReportingOverflow(section.length)
            guard !endOverflow, end <= UInt64(size) else {
                throw Reason.sectionBeyondFile(name: section.name, end: endOverflow ? .max : end, fileSize: size)
            }
            minimum = end
        }
        guard minimum == UInt64(size) else { throw Reason.trailingBytes(expectedEnd: minimum, fileSize: size) }

        // String table: labels, then authors; each a u16 byte length and UTF-8 bytes.
        let stringsStart = Int(sections[0].offset), stringsEnd = stringsStart + Int(sections[0].length)
        var cursor = stringsStart
        var strings: [String] = []
        let total = Int(labelCount) + Int(authorCount)
        strings.reserveCapacity(total)
        for index in 0..<total {
            guard cursor + 2 <= stringsEnd else { throw Reason.stringTableTruncated(entry: index) }
            let length = Int(bytes.loadUnaligned(fromByteOffset: cursor, as: UInt16.self).littleEndian)
            cursor += 2
            guard cursor + length <= stringsEnd else { throw Reason.stringTableTruncated(entry: index) }
            let isLabel = index < Int(labelCount)
            if isLabel && length == 0 { throw Reason.emptyLabel(index: index) }
            guard let text = String(validating: bytes[cursor..<(cursor + length)], as: UTF8.self) else {
                throw Reason.invalidUTF8Label(index: index)
            }
            strings.append(text)
            cursor += length
        }
        guard cursor == stringsEnd else { throw Reason.stringTableTrailingBytes(stringsEnd - cursor) }
        labels = Array(strings[0..<Int(labelCount)])
        authors = Array(strings[Int(labelCount)...])
        var seen = Set<String>()
        for label in labels where !seen.insert(label).inserted { throw Reason.duplicateLabel(label) }

        let fpStart = Int(sections[1].offset)
        fingerprint = Array(bytes[fpStart..<(fpStart + Int(fingerprintLength))])
        metadataOffset = Int(sections[2].offset)
        normsOffset = Int(sections[3].offset)
        rowsOffset = Int(sections[4].offset)

        // Metadata references.
        for row in 0..<count {
            let p = metadataOffset + row * StoreLayout.metadataRecordSize
            let label = u32(p), author = u32(p + 4)
            guard label < labelCount else {
                throw Reason.labelOutOfRange(row: row, labelID: label, labelCount: Int(labelCount))
            }
            guard author < authorCount else {
                throw Reason.authorOutOfRange(row: row, authorID: author, authorCount: Int(authorCount))
            }
        }

        // Rows: finite values, zero padding, stored norm equal to the row's (computed the same way
        // the writer does, so equality is exact up to a rounding tolerance for other writers).
        guard let base = bytes.baseAddress else { return }
        let strideFloats = stride / 4
        let rowsPointer = base.advanced(by: rowsOffset).assumingMemoryBound(to: Float.self)
        let normsPointer = base.advanced(by: normsOffset).assumingMemoryBound(to: Float.self)
        var inverse = [Float](repeating: 0, count: count)
        var maxSquared: Double = 0
        for row in 0..<count {
            let r = rowsPointer + row * strideFloats
            let squared = squaredNorm(r, dim)
            guard squared.isFinite else {
                // Find the offending column for the message; an overflowing norm names column -1.
                let column = (0..<dim).first { !r[$0].isFinite } ?? -1
                throw Reason.nonFiniteValue(row: row, column: column)
            }
            for c in dim..<strideFloats where r[c].bitPattern != 0 { throw Reason.nonZeroPadding(row: row) }
            let storedNorm = normsPointer[row]
            let expected = Float(squared)
            guard storedNorm.isFinite, abs(storedNorm - expected) <= 1e-5 * max(1, expected) else {
                throw Reason.normMismatch(row: row, stored: storedNorm, computed: expected)
            }
            inverse[row] = squared > 0 ? Float(1 / squared.squareRoot()) : 0
            maxSquared = max(maxSquared, squared)
        }
        inverseNorms = inverse
        maxNorm = maxSquared.squareRoot()

        if let identity {
            guard identity.dimension == dim else {
                throw Reason.dimensionMismatch(store: dim, encoder: identity.dimension)
            }
            guard identity.fingerprint == fingerprint else {
                throw Reason.fingerprintMismatch(store: describeFingerprint(fingerprint),
                                                 encoder: describeFingerprint(identity.fingerprint))
            }
        }
    }
}

/// Squared norm in float64, summed in index order. The writer stores `Float(squaredNorm(row))`.
@inline(__always)
func squaredNorm(_ p: UnsafePointer<Float>, _ n: Int) -> Double {
    var s0: Double = 0, s1: Double = 0, s2: Double = 0, s3: Double = 0
    var i = 0
    while i + 4 <= n {
        let a = Double(p[i]), b = Double(p[i + 1]), c = Double(p[i + 2]), d = Double(p[i + 3])
        s0 += a * a; s1 += b * b; s2 += c * c; s3 += d * d
        i += 4
    }
    while i < n { let a = Double(p[i]); s0 += a * a; i += 1 }
    return (s0 + s1) + (s2 + s3)
}

extension StoreError.Reason: Error {}
