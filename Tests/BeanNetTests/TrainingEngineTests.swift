import Foundation
import Testing
@testable import BeanNet

@Suite("Training: forward passes, optimiser, checkpoints")
struct TrainingEngineTests {
    /// Direct 7-loop convolution, independent of im2col and sgemm.
    static func naiveConv(_ x: Tensor, _ c: Conv2d) -> Tensor {
        let (n, ci, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let k = c.kernel, s = c.stride, p = c.padding
        let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
        var y = Tensor(zeros: [n, c.outChannels, ho, wo])
        for b in 0..<n {
            for o in 0..<c.outChannels {
                for oh in 0..<ho {
                    for ow in 0..<wo {
                        var acc = Double(c.bias?.value[o] ?? 0)
                        for i in 0..<ci {
                            for u in 0..<k {
                                for v in 0..<k {
                                    let ih = oh * s - p + u, iw = ow * s - p + v
                                    guard ih >= 0, ih < h, iw >= 0, iw < w else { continue }
                                    acc += Double(x.data[((b * ci + i) * h + ih) * w + iw]) * Double(c.weight.value[((o * ci + i) * k + u) * k + v])
                                }
                            }
                        }
                        y.data[((b * c.outChannels + o) * ho + oh) * wo + ow] = Float(acc)
                    }
                }
            }
        }
        return y
    }

    @Test(arguments: [(3, 1, 1), (3, 2, 1), (1, 2, 0), (5, 3, 2), (2, 2, 0)])
    func convForwardMatchesDirectConvolution(geometry: (Int, Int, Int)) {
        let (k, s, p) = geometry
        var rng = SeededRandom(seed: UInt64(k * 100 + s * 10 + p))
        let conv = Conv2d(3, 5, kernel: k, stride: s, padding: p, rng: &rng)
        conv.bias?.value = (0..<5).map { _ in rng.normal() }
        let x = GradientCheck.randomTensor([2, 3, 9, 7], rng: &rng)
        let y = conv.forward(x, training: false)
        let ref = Self.naiveConv(x, conv)
        #expect(y.shape == ref.shape)
        let worst = zip(y.data, ref.data).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-4)
    }

    @Test func batchNormUsesBatchStatisticsInTrainingAndRunningOnesInEval() {
        let bn = BatchNorm2d(2, momentum: 0.5)
        let x = Tensor(shape: [2, 2, 1, 2], data: [1, 3, 10, 10, 5, 7, 20, 30])
        let y = bn.forward(x, training: true)
        // Channel 0 holds 1, 3, 5, 7: mean 4, biased variance 5.
        let expect0 = [1, 3, 5, 7].map { (Float($0) - 4) / (5 + 1e-5).squareRoot() }
        #expect(zip([y.data[0], y.data[1], y.data[4], y.data[5]], expect0).allSatisfy { abs($0 - $1) < 1e-5 })
        // Running statistics moved halfway from (0, 1) toward (mean 4, unbiased variance 20/3).
        #expect(abs(bn.runningMean.value[0] - 2) < 1e-5)
        #expect(abs(bn.runningVar.value[0] - (0.5 + 0.5 * 20 / 3)) < 1e-4)
        let e = bn.forward(x, training: false)
        #expect(abs(e.data[0] - (1 - 2) / (bn.runningVar.value[0] + 1e-5).squareRoot()) < 1e-5)
    }

    /// A badly conditioned convex quadratic: Adam reaches the minimum.
    @Test func adamConvergesOnConvexProblem() {
        let target: [Float] = [3, -2, 0.5, 10, -7]
        let curvature: [Float] = [1, 10, 100, 0.1, 2]
        let p = Parameter(name: "w", shape: [5], value: [Float](repeating: 0, count: 5))
        var adam = Adam(learningRate: 0.1)
        func loss() -> Float { (0..<5).reduce(0) { $0 + curvature[$1] * (p.value[$1] - target[$1]) * (p.value[$1] - target[$1]) } }
        let start = loss()
        for _ in 0..<3000 {
            adam.zeroGrad([p])
            for i in 0..<5 { p.grad[i] = 2 * curvature[i] * (p.value[i] - target[i]) }
            adam.step([p])
            adam.learningRate *= 0.998
        }
        #expect(adam.steps == 3000)
        #expect(loss() < start * 1e-6)
        for i in 0..<5 { #expect(abs(p.value[i] - target[i]) < 1e-2, "w[\(i)] = \(p.value[i])") }
    }

    @Test func adamWeightDecayShrinksUnusedWeights() {
        let p = Parameter(name: "w", shape: [2], value: [4, -4])
        var adam = Adam(learningRate: 0.01, weightDecay: 0.5)
        for _ in 0..<100 { adam.zeroGrad([p]); adam.step([p]) }
        // Zero gradient: only the decoupled decay acts, w ← w·(1 − lr·wd) per step.
        let expected = 4 * powf(1 - 0.005, 100)
        #expect(abs(p.value[0] - expected) < 1e-3 && abs(p.value[1] + expected) < 1e-3)
    }

    @Test func gradientClippingBoundsTheGlobalNorm() {
        let a = Parameter(name: "a", shape: [2], value: [0, 0]), b = Parameter(name: "b", shape: [1], value: [0])
        a.grad = [3, 0]; b.grad = [4]
        #expect(clipGradientNorm([a, b], maxNorm: 10) == 5)
        #expect(a.grad == [3, 0] && b.grad == [4])   // under the bound: untouched
        #expect(clipGradientNorm([a, b], maxNorm: 1) == 5)
        #expect(abs(a.grad[0] - 0.6) < 1e-6 && abs(b.grad[0] - 0.8) < 1e-6)
    }

    // MARK: checkpoints

    static func makeNet() -> Sequential {
        let net = resnetLikeEncoder(widths: [4, 8], blocks: [1, 1], embedding: 6, seed: 42)
        net.append(L2Normalize())
        return net
    }

    /// One training step on a batch drawn with `rng` (so the generator state matters for resuming).
    static func trainStep(_ net: Sequential, _ adam: inout Adam, _ rng: inout SeededRandom) -> Float {
        let x = GradientCheck.randomTensor([6, 3, 8, 8], rng: &rng)
        let labels = (0..<6).map { _ in Int(rng.next() % 3) }
        net.zeroGrad()
        let e = net.forward(x, training: true)
        let (loss, g, _) = Loss.tripletBatchHard(e, labels: labels, margin: 0.3)
        _ = net.backward(g)
        adam.step(net.parameters)
        return loss
    }

    static func tempPath(_ name: String) -> String {
        NSTemporaryDirectory() + "beand-train-\(getpid())-\(name)"
    }

    @Test func checkpointResumeMatchesUninterruptedRun() throws {
        let path = Self.tempPath("resume.ckpt")
        defer { unlink(path) }
        // Uninterrupted: 6 steps.
        let a = Self.makeNet()
        var adamA = Adam(learningRate: 0.01, weightDecay: 1e-4)
        var rngA = SeededRandom(seed: 5)
        for _ in 0..<6 { _ = Self.trainStep(a, &adamA, &rngA) }

        // Interrupted after 3 steps, saved, and resumed in a freshly built network.
        let b = Self.makeNet()
        var adamB = Adam(learningRate: 0.01, weightDecay: 1e-4)
        var rngB = SeededRandom(seed: 5)
        for _ in 0..<3 { _ = Self.trainStep(b, &adamB, &rngB) }
        try Checkpoint.save(network: b, optimiser: adamB, epoch: 3, random: rngB, metadata: ["recipe": "test"], to: path)

        let c = Self.makeNet()
        let ck = try Checkpoint.read(from: path)
        try ck.restore(into: c, path: path)
        #expect(ck.epoch == 3 && ck.metadata["recipe"] == "test")
        var adamC = ck.optimiser
        var rngC = ck.random
        #expect(adamC == adamB && rngC == rngB)
        for _ in 0..<3 { _ = Self.trainStep(c, &adamC, &rngC) }

        let pa = a.namedState(prefix: ""), pc = c.namedState(prefix: "")
        #expect(pa.count == pc.count)
        for (x, y) in zip(pa, pc) {
            #expect(x.0 == y.0)
            #expect(x.1.value == y.1.value, "\(x.0) differs after resuming")
        }
        // And training did move the parameters (the comparison above is not between untouched nets).
        #expect(Self.makeNet().parameters[0].value != a.parameters[0].value)
    }

    @Test func truncatedOrCorruptCheckpointsNameTheFile() throws {
        let path = Self.tempPath("corrupt.ckpt")
        defer { unlink(path) }
        let net = Self.makeNet()
        var adam = Adam()
        var rng = SeededRandom(seed: 1)
        _ = Self.trainStep(net, &adam, &rng)
        try Checkpoint.save(network: net, optimiser: adam, epoch: 1, random: rng, to: path)
        let good = try Data(contentsOf: URL(fileURLWithPath: path))

        func expectError(_ bytes: Data, containing text: String) {
            _ = FileManager.default.createFile(atPath: path, contents: bytes)
            do {
                _ = try Checkpoint.read(from: path)
                Issue.record("expected an error containing '\(text)'")
            } catch let e as CheckpointError {
                #expect(e.path == path)
                #expect(e.description.contains(path) && e.description.contains(text), "\(e)")
            } catch {
                Issue.record("unexpected error \(error)")
            }
        }
        expectError(good.prefix(good.count / 2), containing: "checksum")
        expectError(good.prefix(10), containing: "truncated")
        var flipped = good
        flipped[good.count / 3] ^= 0x40
        expectError(flipped, containing: "checksum")
        expectError(Data("this is not a checkpoint at all, just text".utf8), containing: "bad magic")
        expectError(Data(), containing: "truncated")
        // A valid checksum over a header that claims an impossible tensor.
        var forged = Data(good.prefix(16))
        let header = #"{"epoch":0,"randomState":"1","metadata":{},"tensors":[{"name":"w","shape":[65536,65536,65536,65536]}],"optimiser":{"learningRate":0.001,"beta1":0.9,"beta2":0.999,"epsilon":1e-8,"weightDecay":0,"steps":0,"moments":[]}}"#
        forged.replaceSubrange(12..<16, with: withUnsafeBytes(of: UInt32(header.utf8.count).littleEndian) { Data($0) })
        forged.append(Data(header.utf8))
        withUnsafeBytes(of: Checkpoint.fnv1a(forged).littleEndian) { forged.append(contentsOf: $0) }
        expectError(forged, containing: "impossible shape")

        do {
            _ = try Checkpoint.read(from: path + ".missing")
            Issue.record("missing file was read")
        } catch let e as CheckpointError {
            #expect(e.description.contains(path + ".missing"))
        }
    }

    @Test func checkpointRefusesADifferentNetwork() throws {
        let path = Self.tempPath("mismatch.ckpt")
        defer { unlink(path) }
        let net = Self.makeNet()
        try Checkpoint.save(network: net, optimiser: Adam(), epoch: 0, random: SeededRandom(seed: 1), to: path)
        let other = resnetLikeEncoder(widths: [4, 16], blocks: [1, 1], embedding: 6, seed: 42)
        other.append(L2Normalize())
        let ck = try Checkpoint.read(from: path)
        #expect(throws: CheckpointError.self) { try ck.restore(into: other, path: path) }
        do { try ck.restore(into: other, path: path) } catch let e as CheckpointError {
            #expect(e.description.contains(path) && e.description.contains("4.conv1.weight"), "\(e)")
        }
        // Adam moments of another network are refused too, before anything is overwritten.
        var foreign = ck
        foreign.optimiser.m = [[0, 0]]
        foreign.optimiser.v = [[0, 0]]
        let before = net.parameters[0].value
        #expect(throws: CheckpointError.self) { try foreign.restore(into: net, path: path) }
        #expect(net.parameters[0].value == before)
    }

    @Test func checkpointWriteIsAtomicAndLeavesNoTemporaryFile() throws {
        let dir = Self.tempPath("dir")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/model.ckpt"
        let net = Self.makeNet()
        try Checkpoint.save(network: net, optimiser: Adam(), epoch: 0, random: SeededRandom(seed: 1), to: path)
        try Checkpoint.save(network: net, optimiser: Adam(), epoch: 1, random: SeededRandom(seed: 2), to: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["model.ckpt"])
        #expect(try Checkpoint.read(from: path).epoch == 1)
        #expect(throws: CheckpointError.self) {
            try Checkpoint.save(network: net, optimiser: Adam(), epoch: 0, random: SeededRandom(seed: 1), to: dir + "/no/such/dir/x.ckpt")
        }
    }
}
