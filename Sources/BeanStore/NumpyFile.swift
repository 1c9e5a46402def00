import BeanCore
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
        let parsed: (shape: [Int], values: [Float])
        do {
            parsed = try NumpyFormat.parseFloats(try readAll(path))
        } catch let error as NumpyFormat.FormatError {
            throw FormatError(path: path, reason: error.reason)
        }
        let shape = parsed.shape
        guard (1...2).contains(shape.count) else {
            throw FormatError(path: path, reason: "shape \(shape) is not 1-D or 2-D")
        }
        let rows = shape.count == 2 ? shape[0] : 1
        let columns = shape.count == 2 ? shape[1] : shape[0]
        return Matrix(rows: rows, columns: columns, values: parsed.values)
    }

    public static func write(_ values: [Float], rows: Int, columns: Int, to path: String) throws {
        var data = NumpyFormat.header(descr: "<f4", shape: [rows, columns])
        values.withUnsafeBytes { data.append(contentsOf: $0) }  // little-endian host (x86-64, arm64)
        try writeAll(data, to: path)
    }

    public static func write(_ values: [Int64], rows: Int, columns: Int, to path: String) throws {
        var data = NumpyFormat.header(descr: "<i8", shape: [rows, columns])
        values.withUnsafeBytes { data.append(contentsOf: $0) }
        try writeAll(data, to: path)
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
