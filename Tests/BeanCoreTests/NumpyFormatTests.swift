import Testing
@testable import BeanCore

@Suite struct NumpyFormatTests {
    @Test func roundTripsAnNDimensionalFloat32Array() throws {
        let values: [Float] = (0..<24).map { Float($0) - 3.5 }
        var bytes = NumpyFormat.header(descr: "<f4", shape: [2, 3, 4])
        #expect((bytes.count) % 64 == 0)
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        let parsed = try NumpyFormat.parseFloats(bytes)
        #expect(parsed.shape == [2, 3, 4])
        #expect(parsed.values == values)
    }

    @Test func readsFloat64AsFloat32() throws {
        let doubles: [Double] = [1.5, -2.25, 1e-3]
        var bytes = NumpyFormat.header(descr: "<f8", shape: [3])
        doubles.withUnsafeBytes { bytes.append(contentsOf: $0) }
        let parsed = try NumpyFormat.parseFloats(bytes)
        #expect(parsed.shape == [3])
        #expect(parsed.values == doubles.map { Float($0) })
    }

    @Test func badInputNamesTheProblem() {
        func reason(_ bytes: [UInt8]) -> String {
            do { _ = try NumpyFormat.parseFloats(bytes); return "parsed" } catch { return "\(error)" }
        }
        #expect(reason(Array("not numpy at all".utf8)) == "not a .npy file (bad magic)")
        let header = NumpyFormat.header(descr: "<f4", shape: [2, 2])
        #expect(reason(header + [0, 0, 0, 0]) == "data is 4 bytes, shape (2, 2) needs 16")
        #expect(reason(NumpyFormat.header(descr: "<i8", shape: [1])).hasPrefix("dtype '<i8' is not float32"))
        #expect(reason(Array(header.prefix(20))) == "truncated .npy header")
    }
}
