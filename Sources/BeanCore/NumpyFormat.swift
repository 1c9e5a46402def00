/// numpy's `.npy` format (versions 1–3, C order, little-endian): the one parser and header writer
/// behind `beanctl model run` (N-d tensors) and `beanctl store` (2-D matrices).
public enum NumpyFormat {
    /// Why bytes are not a usable `.npy` array; callers prefix the file name.
    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public var reason: String
        public var description: String { reason }
    }

    /// Reads a float32 or float64 array (float64 converted to float32) with its shape.
    public static func parseFloats(_ bytes: [UInt8]) throws -> (shape: [Int], values: [Float]) {
        func fail(_ reason: String) -> FormatError { FormatError(reason: reason) }
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
        case "<f4", "=f4", "|f4", "f4": width = 4
        case "<f8", "=f8", "f8": width = 8
        default: throw fail("dtype \(descr) is not float32 or float64 (little-endian)")
        }
        guard let order = field("fortran_order", in: header), order == "False" else {
            throw fail("Fortran-ordered arrays are not supported; save with C order")
        }
        guard let shapeText = field("shape", in: header) else { throw fail("header has no 'shape'") }
        let dims = shapeText.trimmingSet("()").split(separator: ",").map { $0.trimmingSet(" ") }.filter { !$0.isEmpty }
        let shape = dims.compactMap { Int($0) }
        guard shape.count == dims.count, shape.allSatisfy({ $0 >= 0 }) else { throw fail("shape \(shapeText) is not valid") }
        var count = 1
        for d in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw fail("shape \(shapeText) is too large") }
            count = product
        }
        let dataStart = headerStart + headerLength
        guard bytes.count - dataStart == count * width else {
            throw fail("data is \(bytes.count - dataStart) bytes, shape \(shapeText) needs \(count * width)")
        }
        var values = [Float](repeating: 0, count: count)
        bytes.withUnsafeBytes { raw in
            if width == 4 {
                values.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[dataStart...])) }
                return
            }
            for i in 0..<count {
                values[i] = Float(Double(bitPattern: raw.loadUnaligned(fromByteOffset: dataStart + 8 * i, as: UInt64.self).littleEndian))
            }
        }
        return (shape, values)
    }

    /// Magic, version 1 and the header dictionary, padded so the data starts on a 64-byte boundary
    /// as numpy writes it. `descr` is numpy's dtype string (`<f4`, `<i8`).
    public static func header(descr: String, shape: [Int]) -> [UInt8] {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var dict = "{'descr': '\(descr)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + dict.utf8.count + 1
        dict += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        let length = dict.utf8.count
        return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(length & 0xff), UInt8(length >> 8)] + Array(dict.utf8)
    }

    private static func field(_ key: String, in header: String) -> String? {
        // BeanCore has no Foundation: find "'key':" by hand.
        let needle = Array("'\(key)':".utf8), hay = Array(header.utf8)
        guard needle.count <= hay.count,
              let at = (0...(hay.count - needle.count)).first(where: { Array(hay[$0..<$0 + needle.count]) == needle })
        else { return nil }
        let after = String(decoding: hay[(at + needle.count)...], as: UTF8.self)
        var rest = after[...].drop { $0 == " " }
        if rest.first == "(" {
            guard let close = rest.firstIndex(of: ")") else { return nil }
            return String(rest[...close])
        }
        rest = rest.prefix { $0 != "," && $0 != "}" }
        return rest.trimmingSet(" ")
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
