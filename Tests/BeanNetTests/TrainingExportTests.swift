import Foundation
import Testing
@testable import BeanNet

/// Trained networks exported to ONNX must run in the project's runtime (EncoderModel) with the
/// outputs of the training code's own inference forward. When BEAND_TRAIN_EXPORT_DIR is set, the
/// models, inputs and expected outputs are also written there for the onnxruntime check in
/// Tests/integration/32-train-export.sh.
@Suite("Training: ONNX export")
struct TrainingExportTests {
    /// Trains a few steps so batch-norm running statistics and weights are far from their initial
    /// values, then perturbs the BN affine parameters too.
    static func settle(_ net: Layer, inputShape: [Int], seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        var adam = Adam(learningRate: 0.01)
        for _ in 0..<4 {
            let x = GradientCheck.randomTensor([4] + inputShape, rng: &rng, scale: 2)
            net.zeroGrad()
            let y = net.forward(x, training: true)
            let target = GradientCheck.randomTensor(y.shape, rng: &rng)
            _ = net.backward(Loss.mse(y, target).grad)
            adam.step(net.parameters)
        }
        for (name, p) in net.namedState(prefix: "") where name.hasSuffix("gamma") || name.hasSuffix("beta") {
            for i in 0..<p.count { p.value[i] += 0.3 * rng.normal() }
        }
    }

    static func check(_ name: String, _ net: Layer, inputShape: [Int], batch: Int = 3, seed: UInt64, settling: Bool = true) throws {
        if settling { settle(net, inputShape: inputShape, seed: seed) }
        let onnx = try ONNXExport.encoder(net, inputShape: inputShape, producer: "beand-train-test")
        let model = try EncoderModel(data: onnx, source: "\(name).onnx")
        #expect(model.input.sampleShape == inputShape)
        var rng = SeededRandom(seed: seed + 1)
        let x = GradientCheck.randomTensor([batch] + inputShape, rng: &rng)
        let expected = net.forward(x, training: false)
        let session = try model.makeSession(maxBatch: batch)
        let got = try session.run(x.data, batch: batch)
        #expect(got.count == expected.count)
        let worst = zip(got, expected.data).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-4, "\(name): runtime vs training forward, max abs error \(worst)")

        if let dir = ProcessInfo.processInfo.environment["BEAND_TRAIN_EXPORT_DIR"] {
            try onnx.write(to: URL(fileURLWithPath: "\(dir)/\(name).onnx"))
            try x.data.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(dir)/\(name).input.f32")) }
            try expected.data.withUnsafeBytes { try Data($0).write(to: URL(fileURLWithPath: "\(dir)/\(name).expected.f32")) }
            let shapes = "{\"input\": \(x.shape), \"output\": \(expected.shape)}"
            try Data(shapes.utf8).write(to: URL(fileURLWithPath: "\(dir)/\(name).shapes.json"))
        }
    }

    @Test func resnetLikeEncoderWithNormalisedHead() throws {
        let net = resnetLikeEncoder(widths: [8, 16, 24], blocks: [1, 2, 1], embedding: 12, seed: 31)
        net.append(L2Normalize())
        try Self.check("encoder", net, inputShape: [3, 32, 32], seed: 1)
    }

    @Test func everyOtherExportableLayer() throws {
        var rng = SeededRandom(seed: 32)
        let net = Sequential([
            Conv2d(3, 6, kernel: 3, stride: 1, padding: 1, rng: &rng), LeakyReLU(slope: 0.1),
            MaxPool2d(kernel: 3, stride: 2, padding: 1),
            Conv2d(6, 4, kernel: 5, stride: 1, padding: 2, bias: false, rng: &rng), BatchNorm2d(4), Sigmoid(),
            AvgPool2d(kernel: 2, stride: 2),
            Upsample2x(),
            Conv2d(4, 4, kernel: 1, rng: &rng), ReLU(),
            Flatten(), Linear(4 * 8 * 8, 10, bias: false, rng: &rng),
            Reshape([10, 1, 1]), GlobalAvgPool(), Flatten(), Linear(10, 3, rng: &rng),
        ])
        try Self.check("layers", net, inputShape: [3, 16, 16], seed: 2)
    }

    @Test func multiScaleEncoder() throws {
        // The multi-scale head's encoder as train head exports it: the pooled statistics of every
        // stage (GlobalAveragePool, Sub, ReduceL2, Mul, Concat), a linear map, L2 normalisation.
        let shape = TrunkShape(widths: [4, 6, 8], blocks: [1, 1, 1])
        var rng = SeededRandom(seed: 34)
        let net = Sequential([MultiScalePooling(trunk: shape.makeTrunk(seed: 35), taps: shape.stageEnds),
                              Linear(MultiScalePooling.featureCount(channels: shape.widths), 5, rng: &rng), L2Normalize()])
        try Self.check("multiscale", net, inputShape: [3, 16, 16], seed: 4)
        // With the crop's own colour statistics in front (tap −1: the graph's input).
        let withInput = Sequential([MultiScalePooling(trunk: shape.makeTrunk(seed: 36), taps: [MultiScalePooling.inputTap] + shape.stageEnds),
                                    Linear(MultiScalePooling.featureCount(channels: [3] + shape.widths), 5, rng: &rng), L2Normalize()])
        try Self.check("multiscale-input", withInput, inputShape: [3, 16, 16], seed: 5)
    }

    @Test func decoderStyleNetwork() throws {
        var rng = SeededRandom(seed: 33)
        let net = Sequential([
            Conv2d(3, 8, kernel: 3, stride: 2, padding: 1, rng: &rng), BatchNorm2d(8), ReLU(),
            Upsample2x(), Conv2d(8, 3, kernel: 3, stride: 1, padding: 1, rng: &rng), Sigmoid(),
        ])
        try Self.check("decoder", net, inputShape: [3, 12, 12], seed: 3)
    }

    final class Custom: Layer {
        var parameters: [Parameter] { [] }
        func forward(_ x: Tensor, training: Bool) -> Tensor { x }
        func backward(_ dy: Tensor) -> Tensor { dy }
    }

    @Test func unknownLayerIsRefusedWithItsPath() {
        let net = Sequential([ReLU(), Sequential([ReLU(), Custom()])])
        do {
            _ = try ONNXExport.encoder(net, inputShape: [3, 4, 4])
            Issue.record("export of a custom layer succeeded")
        } catch let e as ModelError {
            #expect(e.kind == .unsupported)
            #expect(e.message.contains("'1.1'") && e.message.contains("Custom"), "\(e)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
