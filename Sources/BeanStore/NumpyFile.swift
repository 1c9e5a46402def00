#if canImport(Glibc)
import Glibc
#endif

/// numpy's `.npy` format (versions 1–3), for the 2-D float32 / int64 arrays the store exchanges with
/// users. Reads `<f4` and `<f8` (converted to float32); writes `<f4` and `<i8`, C order.
public enum NumpyFile {
    public struct Matrix<Element>: Sendable where Element: Sendable {
        public var rows: Int
        public var columns: Int
        public var values: [Element]
    }

    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason)" }
    }

    /// Reads a 2-D (or 1-D, as one row) float array.
    public static func readFloat32(_ path: String) throws -> Matrix<Float> {
        let bytes = try readAll(path)
        func fail(_ reason: String) -> FormatError { FormatError(path: path, reason: reason) }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else { throw fail("not a .npy file (bad magic)") }
        let major = bytes[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw fail("truncated .npy header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        default:
            throw fail("unsupported .npy version \(major)")
        }
        guard headerStart + headerLength <= bytes.count else { throw fail("truncated .npy header") }
        let header = String(decoding: bytes[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        guard let descr = field("descr", in: header) else { throw fail("header has no 'descr'") }
        let width: Int
        switch descr.trimmingSet("'\"") {
        case "<f4", "=f4", "f4": width = 4
        case "<f8", "=f8", "f8": width = 8
        default: throw fail("dtype \(descr) is not float32 or float64 (little-endian)")
        }
        guard let order = field("fortran_order", in: header), order == "False" else {
            throw fail("Fortran-ordered arrays are not supported; save with C order")
        }
        guard let shapeText = field("shape", in: header) else { throw fail("header has no 'shape'") }
        let dims = shapeText.trimmingSet("()").split(separator: ",")
            .map { $0.trimmingSet(" ") }.filter { !$0.isEmpty }
        let shape = dims.compactMap { Int($0) }
        guard shape.count == dims.count, (1...2).contains(shape.count), shape.allSatisfy({ $0 >= 0 }) else {
            throw fail("shape \(shapeText) is not 1-D or 2-D")
        }
        let rows = shape.count == 2 ? shape[0] : 1
        let columns = shape.count == 2 ? shape[1] : shape[0]
        let dataStart = headerStart + headerLength
        let (n, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow, bytes.count - dataStart == n * width else {
            throw fail("data is \(bytes.count - dataStart) bytes, shape \(shapeText) needs \(n * width)")
        }
        var values = [Float](repeating: 0, count: n)
        bytes.withUnsafeBytes { raw in
            if width == 4 {
                values.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[dataStart...])) }
                return
            }
            for i in 0..<n {
                values[i] = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: dataStart + 8 * i, as: UInt64.self).littleEndian))
            }
        }
        return Matrix(rows: rows, columns: columns, values: values)
    }

    public static func write(_ values: [Float], rows: Int, columns: Int, to path: String) throws {
        var data = header(descr: "<f4", rows: rows, columns: columns)
        values.withUnsafeBytes { data.append(contentsOf: $0) }  // little-endian host (x86-64, arm64)
        try writeAll(data, to: path)
    }

    public static func write(_ values: [Int64], rows: Int, columns: Int, to path: String) throws {
        var data = header(descr: "<i8", rows: rows, columns: columns)
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try writeAll(data, to: path)
    }

    private static func header(descr: String, rows: Int, columns: Int) -> [UInt8] {
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(rows), \(columns)), }"
        // Pad so that the data starts on a 64-byte boundary, as numpy does.
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = dict.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xff), UInt8(length >> 8)] + Array(dict.utf8)
    }

    private static func field(_ key: String, in header: String) -> String? {
        guard let range = header.range(of: "'\(key)':") else { return nil }
        var rest = header[range.upperBound...].drop { $0 == " " }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        rest = rest.prefix { $0 != "," && $0 != "}" }
        return rest.trimmingSet(" ")
    }

    static func readAll(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError(path: path, reason: "cannot open (\(errnoText(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FormatError(path: path, reason: "fstat failed (\(errnoText(errno)))") }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { raw in raw.baseAddress.map { read(fd, $0 + done, raw.count - done) } ?? 0 }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FormatError(path: path, reason: "read failed (\(errnoText(errno)))") }
            done += n
        }
        return bytes
    }

    static func writeAll(_ data: [UInt8], to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FormatError(path: path, reason: "cannot create (\(errnoText(errno)))") }
        defer { close(fd) }
        var done = 0
        while done < data.count {
            let n = data.withUnsafeBytes { raw in raw.baseAddress.map { Glibc.write(fd, $0 + done, raw.count - done) } ?? 0 }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw FormatError(path: path, reason: "write failed (\(errnoText(errno)))") }
            done += n
        }
    }
}

private extension StringProtocol {
    func trimmingSet(_ set: String) -> String {
        let chars = Set(set)
        let s = self.drop { chars.contains($0) }
        var end = s.endIndex
        while end > s.startIndex, chars.contains(s[s.index(before: end)]) { end = s.index(before: end) }
        return String(s[s.startIndex..<end])
    }
}
