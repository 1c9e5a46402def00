import Foundation
import Testing
@testable import BeanNet

@Suite struct EncoderEnsembleTests {
    /// A small exported encoder: conv, pooling, a linear map to `width`, unit length.
    private func member(seed: UInt64, width: Int, side: Int = 16) throws -> (Sequential, Data) {
        var rng = SeededRandom(seed: seed)
        let net = Sequential([Conv2d(3, 6, kernel: 3, stride: 2, padding: 1, rng: &rng), ReLU(), GlobalAvgPool(), Flatten(),
                              Linear(6, width, rng: &rng), L2Normalize()])
        return (net, try ONNXExport.encoder(net, inputShape: [3, side, side], producer: "ensemble-test"))
    }

    /// The ensemble's output is the members' embeddings side by side, scaled to unit length
    /// (each member is unit length, so by 1/√2), and its cosine is the mean of theirs.
    @Test func ensembleJoinsTheMembersEmbeddings() throws {
        let (a, aData) = try member(seed: 1, width: 5)
        let (b, bData) = try member(seed: 2, width: 3)
        let combined = try EncoderEnsemble.combine([aData, bData], sources: ["a.onnx", "b.onnx"])
        let model = try EncoderModel(data: combined, source: "ensemble.onnx")
        #expect(model.outputDim == 8 && model.input.sampleShape == [3, 16, 16])
        var rng = SeededRandom(seed: 3)
        let x = Tensor(shape: [2, 3, 16, 16], data: (0..<(2 * 3 * 16 * 16)).map { _ in rng.normal() })
        let got = try model.makeSession(maxBatch: 2).run(x.data, batch: 2)
        let ya = a.forward(x, training: false), yb = b.forward(x, training: false)
        let scale = 1 / Float(2).squareRoot()
        for row in 0..<2 {
            let expected = (Array(ya.data[(row * 5)..<((row + 1) * 5)]) + Array(yb.data[(row * 3)..<((row + 1) * 3)])).map { $0 * scale }
            let actual = Array(got[(row * 8)..<((row + 1) * 8)])
            let worst = zip(actual, expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 1e-5, "row \(row): ensemble \(actual), members \(expected)")
        }
        let cosine = (0..<8).reduce(Float(0)) { $0 + got[$1] * got[8 + $1] }
        let cosA = (0..<5).reduce(Float(0)) { $0 + ya.data[$1] * ya.data[5 + $1] }
        let cosB = (0..<3).reduce(Float(0)) { $0 + yb.data[$1] * yb.data[3 + $1] }
        #expect(abs(cosine - (cosA + cosB) / 2) < 1e-5)
    }

    @Test func membersThatSeeAnotherCropOrAreNotModelsAreRefusedByName() throws {
        let (_, small) = try member(seed: 1, width: 4, side: 16)
        let (_, large) = try member(seed: 2, width: 4, side: 24)
        #expect(throws: ModelError.self) { try EncoderEnsemble.combine([small], sources: ["only.onnx"]) }
        do {
            _ = try EncoderEnsemble.combine([small, large], sources: ["small.onnx", "large.onnx"])
            Issue.record("members of different crop sizes were combined")
        } catch let error as ModelError {
            #expect(error.kind == .shape && error.message.contains("large.onnx takes input [3, 24, 24], small.onnx takes [3, 16, 16]"), "\(error)")
        }
        do {
            _ = try EncoderEnsemble.combine([small, Data("not onnx".utf8)], sources: ["small.onnx", "garbage.onnx"])
            Issue.record("garbage was combined")
        } catch let error as ModelError {
            #expect(error.message.contains("garbage.onnx"), "\(error)")
        }
    }
}
