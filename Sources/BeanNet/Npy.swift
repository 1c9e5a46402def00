import BeanCore
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
        do {
            let parsed = try NumpyFormat.parseFloats([UInt8](data))
            return NpyArray(shape: parsed.shape, values: parsed.values)
        } catch let error as NumpyFormat.FormatError {
            throw ModelError(.invalid, "\(source): \(error.reason)")
        }
    }

    public func encoded() -> Data {
        var out = Data(NumpyFormat.header(descr: "<f4", shape: shape))
        values.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    public func write(path: String) throws {
        do { try encoded().write(to: URL(fileURLWithPath: path)) } catch {
            throw ModelError(.unreadable, "cannot write \(path): \(error.localizedDescription)")
        }
    }
}
