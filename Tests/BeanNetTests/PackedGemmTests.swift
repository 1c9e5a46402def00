import CBLAS
import Foundation
import Testing
@testable import BeanNet

@Suite struct PackedGemmTests {
    /// Every kernel level this CPU can run (both AVX-512 and AVX2 on an AVX-512 machine).
    static var levels: [Int32] {
        let cpu = beand_net_cpu_level()
        return cpu >= 2 ? [2, 1] : (cpu == 1 ? [1] : [])
    }

    func naive(m: Int, n: Int, k: Int, a: [Float], lda: Int, b: [Float]) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s: Double = 0
            for p in 0..<k { s += Double(a[i * lda + p]) * Double(b[p * n + j]) }
            c[i * n + j] = Float(s)
        } }
        return c
    }

    /// Row counts around the micro-tile heights (6, 8), columns around the panel widths (16, 32),
    /// depths across the K block (256) — including a strided A and a C with spare columns.
    @Test(arguments: [(1, 1, 1), (1, 128, 512), (4, 512, 600), (7, 24, 37), (8, 32, 256), (9, 33, 257),
                      (13, 17, 5), (16, 64, 1152), (6, 16, 300), (64, 40, 64), (3, 100, 513)])
    func matchesNaiveProduct(shape: (Int, Int, Int)) throws {
        let (m, n, k) = shape
        var rng = TestRandom(seed: UInt64(m * 1_000_003 + n * 1009 + k))
        let lda = k + 3, ldc = n + 5
        let a = (0..<(m * lda)).map { _ in rng.normal() }
        let b = (0..<(k * n)).map { _ in rng.normal() }
        let want = naive(m: m, n: n, k: k, a: a, lda: lda, b: b)
        for level in Self.levels {
            let packed = PackedGemm.pack(b, k: k, n: n, slices: 1, level: level)
            #expect(packed.count == PackedGemm.packedCount(k: k, n: n, level: level))
            var c = [Float](repeating: .nan, count: m * ldc)
            a.withUnsafeBufferPointer { pa in packed.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
                PackedGemm.gemm(level: level, m: m, n: n, k: k, a: pa.baseAddress!, lda: lda, packed: pb.baseAddress!,
                                c: pc.baseAddress!, ldc: ldc)
            } } }
            var worst: Float = 0
            for i in 0..<m { for j in 0..<n { worst = max(worst, abs(c[i * ldc + j] - want[i * n + j])) } }
            #expect(worst < 1e-3 * Float(k).squareRoot(), "level \(level) \(m)×\(n)×\(k): max abs error \(worst)")
            // Columns past n belong to someone else: the kernel must not write them.
            for i in 0..<m { for j in n..<ldc { #expect(c[i * ldc + j].isNaN, "level \(level) wrote C[\(i), \(j)] past n = \(n)") } }
        }
    }

    @Test func packingZeroPadsTheLastPanelAndKeepsSlicesApart() throws {
        for level in Self.levels {
            let nr = PackedGemm.panelWidth(level: level)
            let k = 3, n = nr + 2
            // Two slices: values encode (slice, row, column) so misplacement shows.
            let b = (0..<(2 * k * n)).map { Float($0 + 1) }
            let packed = PackedGemm.pack(b, k: k, n: n, slices: 2, level: level)
            let stride = PackedGemm.packedCount(k: k, n: n, level: level)
            #expect(stride == 2 * nr * k)
            for s in 0..<2 { for p in 0..<k { for j in 0..<(2 * nr) {
                let got = packed[s * stride + (j / nr) * k * nr + p * nr + j % nr]
                let want: Float = j < n ? b[s * k * n + p * n + j] : 0
                #expect(got == want, "level \(level) slice \(s) row \(p) column \(j)")
            } } }
        }
    }

    @Test func noKernelLevelLeavesTheCallToBLAS() {
        #expect(PackedGemm.panelWidth(level: 0) == 0)
        var c: [Float] = [7]
        let done = c.withUnsafeMutableBufferPointer { pc in
            [Float(1)].withUnsafeBufferPointer { p in beand_net_gemm(0, 1, 1, 1, p.baseAddress!, 1, p.baseAddress!, pc.baseAddress!, 1) }
        }
        #expect(done == 0)
        #expect(c == [7])
    }

    /// At batch 1 every non-depthwise conv of the small CNN has few GEMM rows, so a plan at each
    /// kernel level packs all of them; its output matches the naive reference.
    @Test func packedPlanAgreesWithNaiveReference() throws {
        let cnn = SmallCNN()
        let model = try EncoderModel(data: cnn.data, source: "small")
        var rng = TestRandom(seed: 21)
        let x = (0..<192).map { _ in rng.normal() }
        let want = cnn.reference(x, batch: 1)
        for level in Self.levels + [0] {
            let plan = try model.plan(batch: 1, gemmLevel: level)
            var convs = 0, packed = 0
            for step in plan.steps { if case .conv(let c) = step, c.kind != .depthwise { convs += 1; if c.packed != nil { packed += 1 } } }
            #expect(convs > 0)
            #expect(packed == (level != 0 ? convs : 0), "level \(level): \(packed) of \(convs) convs packed")
            let arena = Arena(count: plan.totalFloats)
            (arena.pointer + plan.offsets[plan.inputs[0].storage]).update(from: x, count: x.count)
            plan.run(arena: arena.pointer)
            let out = plan.outputs[0]
            let got = Array(UnsafeBufferPointer(start: arena.pointer + plan.offsets[out.storage], count: out.count))
            #expect(got.count == want.count)
            #expect(zip(got, want).map { abs($0 - $1) }.max() ?? .infinity < 1e-4, "level \(level)")
        }
    }
}
