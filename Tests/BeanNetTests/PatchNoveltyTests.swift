import Foundation
import Testing
@testable import BeanNet

/// The patch-novelty coordinate: descriptors, the coreset bank, the standardisation, and its
/// export (runtime against the training code's forward; onnxruntime in 32-train-export.sh).
@Suite("Training: patch novelty")
struct PatchNoveltyTests {
    /// Brute force: per sample, max over positions of min over the bank of the squared distance.
    static func bruteForce(_ d: [Float], positions: Int, channels: Int, bank: [Float]) -> [Float] {
        let rows = d.count / channels, k = bank.count / channels
        var out = [Float](repeating: -.infinity, count: rows / positions)
        for r in 0..<rows {
            var nearest = Float.infinity
            for j in 0..<k {
                var s: Float = 0
                for c in 0..<channels { let t = d[r * channels + c] - bank[j * channels + c]; s += t * t }
                nearest = min(nearest, s)
            }
            out[r / positions] = max(out[r / positions], nearest)
        }
        return out
    }

    @Test func noveltyIsTheLargestDistanceToTheNearestBankPatch() {
        var rng = SeededRandom(seed: 3)
        let (samples, positions, channels, k) = (3, 10, 5, 7)
        let d = (0..<samples * positions * channels).map { _ in rng.normal() }
        let bank = (0..<k * channels).map { _ in rng.normal() }
        let got = PatchNovelty.novelties(descriptors: d, positions: positions, channels: channels, bank: bank)
        let want = Self.bruteForce(d, positions: positions, channels: channels, bank: bank)
        #expect(got.count == samples)
        for (g, w) in zip(got, want) { #expect(abs(g - w) <= 1e-4 * max(1, abs(w)), "\(got) against \(want)") }
    }

    @Test func descriptorsPoolToTheGridAndAverageThreeByThreeWithoutPadding() {
        // Tap 0: 4×4 of one channel, pooled 2×2 to the 2×2 grid; tap 1: 2×2 of one channel.
        let fine = Tensor(shape: [1, 1, 4, 4], data: (0..<16).map(Float.init))
        let coarse = Tensor(shape: [1, 1, 2, 2], data: [1, 2, 3, 4])
        let (d, positions) = PatchNovelty.descriptors([fine, coarse], factors: [2, 1], scales: [1, 0.5])
        #expect(positions == 4)
        // 2×2 means of `fine`: 2.5, 4.5, 10.5, 12.5; on a 2×2 grid every 3×3 window holds all four.
        let fineMean: Float = (2.5 + 4.5 + 10.5 + 12.5) / 4, coarseMean: Float = 2.5 * 0.5
        for p in 0..<4 {
            #expect(abs(d[p * 2] - fineMean) < 1e-5)
            #expect(abs(d[p * 2 + 1] - coarseMean) < 1e-5)
        }
    }

    /// One channel, one position per photo: each photo is one patch, its value the map's value.
    static func scalarMaps(_ values: [Float]) -> (Range<Int>) -> [Tensor] {
        { range in [Tensor(shape: [range.count, 1, 1, 1], data: Array(values[range]))] }
    }

    @Test func bankIsTheGreedyFarthestPointCoresetOfGoodPatches() throws {
        // Good photos at 0, 1, 10, 11 (and a defect at 30): two centres are 0, then 11 (farthest).
        let values: [Float] = [0, 1, 10, 11, 30]
        let good = [true, true, true, true, false]
        let n = try PatchNovelty.fit(taps: [5], good: good, bankSize: 2, weight: 1, batch: 2, maps: Self.scalarMaps(values))
        #expect(n.bankCount == 2)
        let scale = n.scales[0]
        let centres = n.bank.map { $0 / scale }
        #expect(abs(centres[0]) < 1e-5 && abs(centres[1] - 11) < 1e-4, "\(centres)")
        // Standardised: the good photos' coordinates average 0 and all photos' spread is the weight.
        let coords = (0..<values.count).map { i in n.coordinates([Tensor(shape: [1, 1, 1, 1], data: [values[i]])])[0] }
        let goodMean = zip(coords, good).filter(\.1).map(\.0).reduce(0, +) / 4
        #expect(abs(goodMean) < 1e-4)
        let mean = coords.reduce(0, +) / Float(coords.count)
        let spread = (coords.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(coords.count)).squareRoot()
        #expect(abs(spread - 1) < 1e-3)
        // The defect, far from every good patch, is the most novel.
        #expect(coords.firstIndex(of: coords.max() ?? 0) == 4)
        // A bank larger than the good patches holds each of them once.
        let all = try PatchNovelty.fit(taps: [5], good: good, bankSize: 50, weight: 1, maps: Self.scalarMaps(values))
        #expect(all.bankCount == 4)
    }

    @Test func fittingWithoutGoodBeansIsRefusedNamingTheOption() {
        #expect {
            _ = try PatchNovelty.fit(taps: [5], good: [false, false], bankSize: 4, weight: 1, maps: Self.scalarMaps([1, 2]))
        } throws: { error in
            "\(error)".contains("needs labelled good beans") && "\(error)".contains("--patch-novelty 0")
        }
        #expect(throws: TrainingError.self) {
            _ = try PatchNovelty.fit(taps: [5], good: [true], bankSize: 0, weight: 1, maps: Self.scalarMaps([1]))
        }
        #expect(throws: TrainingError.self) {
            _ = try PatchNovelty.fit(taps: [5], good: [true], bankSize: 4, weight: 0, maps: Self.scalarMaps([1]))
        }
    }

    @Test func noveltyEncoderExportsAndRunsAsTheTrainingForward() throws {
        // The multi-scale encoder with the coordinate, as train head exports it: stage 0 (16×16)
        // pooled to stage 1's 8×8 grid; AveragePool, Concat, 1×1 Conv against the bank, ReduceMax,
        // Mul, Sub, Gemm, Concat, LpNormalization.
        let shape = TrunkShape(widths: [4, 6, 8], blocks: [1, 1, 1])
        let pooling = MultiScalePooling(trunk: shape.makeTrunk(seed: 41), taps: shape.stageEnds)
        TrainingExportTests.settle(pooling, inputShape: [3, 32, 32], seed: 42)
        var rng = SeededRandom(seed: 43)
        let photos = GradientCheck.randomTensor([6, 3, 32, 32], rng: &rng)
        let taps = Array(shape.stageEnds.prefix(2))
        let novelty = try PatchNovelty.fit(taps: taps, good: [true, true, true, false, false, true], bankSize: 20, weight: 0.5, batch: 4) { range in
            let x = Tensor(shape: [range.count, 3, 32, 32], data: Array(photos.data[range.lowerBound * 3072..<range.upperBound * 3072]))
            let maps = pooling.forwardKeepingMaps(x).maps
            return taps.compactMap { maps[$0] }
        }
        #expect(novelty.factors == [2, 1] && novelty.channels == 10 && novelty.bankCount == 20)
        let head = Sequential([Linear(MultiScalePooling.featureCount(channels: shape.widths), 5, rng: &rng), L2Normalize()])
        let net = NoveltyEncoder(pooling: pooling, head: head, novelty: novelty)
        let y = net.forward(photos, training: false)
        #expect(y.shape == [6, 6])
        // The coordinate is not a constant: the photos differ in novelty.
        let last = (0..<6).map { y.data[$0 * 6 + 5] }
        #expect((last.max() ?? 0) - (last.min() ?? 0) > 1e-3, "\(last)")
        try TrainingExportTests.check("novelty", Sequential([net]), inputShape: [3, 32, 32], seed: 6, settling: false)
    }
}
