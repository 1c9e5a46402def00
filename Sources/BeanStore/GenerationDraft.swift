#if canImport(Glibc)
import Glibc
#endif

/// The contents of a generation being prepared in memory: start empty or from the current
/// generation, append or remove vectors, then hand it to `StoreWriter.publish`.
public struct GenerationDraft: Sendable {
    public let dimension: Int
    public var metric: Metric
    public var fingerprint: [UInt8]
    public private(set) var labels: [String]
    public private(set) var authors: [String]
    /// `count × dimension` values, row-major.
    public private(set) var vectors: [Float]
    public private(set) var metadata: [VectorMetadata]

    public var count: Int { metadata.count }

    public init(dimension: Int, metric: Metric, fingerprint: [UInt8]) {
        self.dimension = dimension
        self.metric = metric
        self.fingerprint = fingerprint
        self.labels = []
        self.authors = []
        self.vectors = []
        self.metadata = []
    }

    /// A draft holding everything `generation` holds.
    public init(copying generation: StoreGeneration) {
        self.dimension = generation.dimension
        self.metric = generation.metric
        self.fingerprint = generation.fingerprint
        self.labels = generation.labels
        self.authors = generation.authors
        var vectors = [Float]()
        vectors.reserveCapacity(generation.count * generation.dimension)
        var metadata = [VectorMetadata]()
        metadata.reserveCapacity(generation.count)
        for row in 0..<generation.count {
            generation.withVector(at: row) { vectors.append(contentsOf: $0) }
            metadata.append(generation.metadata(at: row))
        }
        self.vectors = vectors
        self.metadata = metadata
    }

    /// Appends `values.count / dimension` vectors, all with one label and author.
    public mutating func append(vectors values: [Float], labels rowLabels: [String], author: String,
                                sourceIDs: [UInt64], addedNs: Int64) throws {
        func invalid(_ message: String) -> StoreError.Reason { .invalidInput(message) }
        guard dimension > 0 else { throw invalid("dimension is 0") }
        guard values.count % dimension == 0 else {
            throw invalid("\(values.count) values are not a whole number of \(dimension)-dimensional vectors")
        }
        let n = values.count / dimension
        guard rowLabels.count == n else { throw invalid("\(n) vectors but \(rowLabels.count) labels") }
        guard sourceIDs.count == n else { throw invalid("\(n) vectors but \(sourceIDs.count) source ids") }
        for (i, v) in values.enumerated() where !v.isFinite {
            throw invalid("vector \(i / dimension), column \(i % dimension): NaN or infinite value")
        }
        for row in 0..<n {
            let squared = values.withUnsafeBufferPointer { buffer in
                buffer.baseAddress.map { squaredNorm($0 + row * dimension, dimension) } ?? 0
            }
            guard Float(squared).isFinite else { throw invalid("vector \(row): squared norm overflows float32") }
        }
        let authorID = try index(of: author, in: \.authors, isLabel: false)
        var labelIDs: [UInt32] = []
        labelIDs.reserveCapacity(n)
        for label in rowLabels { labelIDs.append(try index(of: label, in: \.labels, isLabel: true)) }
        vectors.append(contentsOf: values)
        for row in 0..<n {
            metadata.append(VectorMetadata(labelID: labelIDs[row], authorID: authorID,
                                           sourceID: sourceIDs[row], addedNs: addedNs))
        }
    }

    /// Removes the rows for which `shouldRemove(row, metadata)` is true; returns how many.
    @discardableResult
    public mutating func removeAll(where shouldRemove: (Int, VectorMetadata) -> Bool) -> Int {
        var keptVectors = [Float]()
        keptVectors.reserveCapacity(vectors.count)
        var keptMetadata = [VectorMetadata]()
        for (row, meta) in metadata.enumerated() where !shouldRemove(row, meta) {
            keptVectors.append(contentsOf: vectors[(row * dimension)..<((row + 1) * dimension)])
            keptMetadata.append(meta)
        }
        let removed = metadata.count - keptMetadata.count
        vectors = keptVectors
        metadata = keptMetadata
        return removed
    }

    private mutating func index(of name: String, in table: WritableKeyPath<GenerationDraft, [String]>,
                                isLabel: Bool) throws -> UInt32 {
        if let i = self[keyPath: table].firstIndex(of: name) { return UInt32(i) }
        if isLabel && name.isEmpty { throw StoreError.Reason.invalidInput("empty label") }
        guard name.utf8.count <= StoreLayout.maxStringBytes else {
            throw StoreError.Reason.invalidInput("name longer than \(StoreLayout.maxStringBytes) bytes: \(name.prefix(40))…")
        }
        guard self[keyPath: table].count < StoreLayout.maxStrings else {
            throw StoreError.Reason.invalidInput("more than \(StoreLayout.maxStrings) distinct \(isLabel ? "labels" : "authors")")
        }
        self[keyPath: table].append(name)
        return UInt32(self[keyPath: table].count - 1)
    }

    /// Serialises to the version-1 layout at `base` (which must hold `layout.fileLength` zeroed
    /// bytes), checksum included.
    func serialize(into base: UnsafeMutableRawPointer, layout: Layout, generation: UInt64, createdNs: Int64) {
        typealias O = StoreLayout.Offset
        func put32(_ o: Int, _ v: UInt32) { base.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt32.self) }
        func put64(_ o: Int, _ v: UInt64) { base.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt64.self) }
        for (i, b) in StoreLayout.magic.enumerated() { base.storeBytes(of: b, toByteOffset: i, as: UInt8.self) }
        put32(O.version, StoreLayout.version)
        put32(O.headerSize, UInt32(StoreLayout.headerSize))
        put64(O.fileLength, UInt64(layout.fileLength))
        put64(O.generation, generation)
        put64(O.createdNs, UInt64(bitPattern: createdNs))
        put32(O.dim, UInt32(dimension))
        put32(O.elementType, ElementType.float32.rawValue)
        put32(O.metric, metric.rawValue)
        put32(O.rowStride, UInt32(layout.rowStride))
        put64(O.count, UInt64(count))
        put32(O.labelCount, UInt32(labels.count))
        put32(O.authorCount, UInt32(authors.count))
        put64(O.stringsOffset, UInt64(layout.stringsOffset))
        put64(O.stringsLength, UInt64(layout.stringsLength))
        put64(O.fingerprintOffset, UInt64(layout.fingerprintOffset))
        put64(O.fingerprintLength, UInt64(fingerprint.count))
        put64(O.metadataOffset, UInt64(layout.metadataOffset))
        put64(O.normsOffset, UInt64(layout.normsOffset))
        put64(O.rowsOffset, UInt64(layout.rowsOffset))

        var cursor = layout.stringsOffset
        for s in labels + authors {
            let utf8 = Array(s.utf8)
            base.storeBytes(of: UInt16(utf8.count).littleEndian, toByteOffset: cursor, as: UInt16.self)
            cursor += 2
            utf8.withUnsafeBytes { raw in
                if let p = raw.baseAddress { base.advanced(by: cursor).copyMemory(from: p, byteCount: raw.count) }
            }
            cursor += utf8.count
        }
        fingerprint.withUnsafeBytes { raw in
            if let p = raw.baseAddress { base.advanced(by: layout.fingerprintOffset).copyMemory(from: p, byteCount: raw.count) }
        }
        for (row, meta) in metadata.enumerated() {
            let o = layout.metadataOffset + row * StoreLayout.metadataRecordSize
            put32(o, meta.labelID)
            put32(o + 4, meta.authorID)
            put64(o + 8, meta.sourceID)
            put64(o + 16, UInt64(bitPattern: meta.addedNs))
        }
        vectors.withUnsafeBufferPointer { values in
            guard let src = values.baseAddress else { return }
            let norms = base.advanced(by: layout.normsOffset).assumingMemoryBound(to: Float.self)
            for row in 0..<count {
                let from = src + row * dimension
                norms[row] = Float(squaredNorm(from, dimension))
                base.advanced(by: layout.rowsOffset + row * layout.rowStride)
                    .copyMemory(from: from, byteCount: dimension * 4)
            }
        }
        let checksum = XXH64.hash(UnsafeRawBufferPointer(
            start: base.advanced(by: StoreLayout.checksumStart), count: layout.fileLength - StoreLayout.checksumStart))
        put64(O.checksum, checksum)
    }

    struct Layout {
        var rowStride = 0
        var stringsOffset = 0, stringsLength = 0
        var fingerprintOffset = 0
        var metadataOffset = 0, normsOffset = 0, rowsOffset = 0
        var fileLength = 0
    }

    var layout: Layout {
        var l = Layout()
        l.rowStride = StoreLayout.rowStride(dim: dimension)
        l.stringsOffset = StoreLayout.headerSize
        l.stringsLength = (labels + authors).reduce(0) { $0 + 2 + $1.utf8.count }
        l.fingerprintOffset = StoreLayout.alignUp(l.stringsOffset + l.stringsLength)
        l.metadataOffset = StoreLayout.alignUp(l.fingerprintOffset + fingerprint.count)
        l.normsOffset = StoreLayout.alignUp(l.metadataOffset + count * StoreLayout.metadataRecordSize)
        l.rowsOffset = StoreLayout.alignUp(l.normsOffset + count * 4)
        l.fileLength = l.rowsOffset + count * l.rowStride
        return l
    }
}
