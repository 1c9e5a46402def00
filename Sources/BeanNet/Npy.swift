import Foundation

/// A float32 tensor in NumPy's .npy format (version 1/2/3, C order, little-endian f4 or f8 read;
/// f4 written). `beanctl model run` uses it to exchange raw NCHW tensors.
public struct NpyArray: Sendable, Equatable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }

    public static func read(path: String) throws -> NpyArray {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(.unreadable, "cannot read \(path)")
        }
        return try parse(data, source: path)
    }

    public static func parse(_ data: Data, source: String) throws -> NpyArray {
        let bytes = [UInt8](data)
        func fail(_ why: String) -> ModelError { ModelError(.invalid, "\(source): not a float .npy file (\(why))") }
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else { throw fail("bad magic") }
        let major = bytes[6]
        var headerLength: Int, start: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8; start = 10
        } else if major == 2 || major == 3 {
            guard bytes.count >= 12 else { throw fail("truncated header") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24; start = 12
        } else { throw fail("version \(major)") }
        guard start + headerLength <= bytes.count else { throw fail("truncated header") }
        let header = String(decoding: bytes[start ..< start + headerLength], as: UTF8.self)
        func field(_ key: String) -> String? {
            guard let r = header.range(of: "'\(key)':") else { return nil }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = field("descr") else { throw fail("no descr") }
        let width: Int
        if descr.hasPrefix("'<f4'") || descr.hasPrefix("'|f4'") { width = 4 } else if descr.hasPrefix("'<f8'") { width = 8 } else {
            throw fail("dtype \(descr.prefix(6)); expected little-endian float32 or float64")
        }
        guard let order = field("fortran_order"), order.hasPrefix("False") else { throw fail("Fortran order is not supported") }
        guard let shapeField = field("shape"), let open = shapeField.firstIndex(of: "("), let close = shapeField.firstIndex(of: ")") else {
            throw fail("no shape")
        }
        let shape = try shapeField[shapeField.index(after: open)..<close].split(separator: ",").map { part -> Int in
            guard let v = Int(part.trimmingCharacters(in: .whitespaces)), v >= 0 else { throw fail("shape \(shapeField[open...close])") }
            return v
        }
        let count = shape.reduce(1, *)
        let body = start + headerLength
        guard bytes.count - body == count * width else {
            throw fail("shape \(shape) needs \(count * width) data bytes, file has \(bytes.count - body)")
        }
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            if width == 4 {
                values.withUnsafeMutableBytes { dst in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[body...])) }
            } else {
                for i in 0..<count { values[i] = Float(raw.loadUnaligned(fromByteOffset: body + 8 * i, as: Double.self)) }
            }
        }
        return NpyArray(shape: shape, values: values)
    }

    public func encoded() -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        let total = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - total % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let len = UInt16(header.utf8.count)
        out.append(contentsOf: [UInt8(len & 0xff), UInt8(len >> 8)])
        out.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    public func write(path: String) throws {
        do { try encoded().write(to: URL(fileURLWithPath: path)) } catch {
            throw ModelError(.unreadable, "cannot write \(path): \(error.localizedDescription)")
        }
    }
}
