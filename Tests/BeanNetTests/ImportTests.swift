import Foundation
import Testing
@testable import BeanNet

@Suite struct ImportTests {
    func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    }

    @Test func smallCNNMatchesNaiveReference() throws {
        let cnn = SmallCNN()
        let model = try EncoderModel(data: cnn.data, source: "small")
        #expect(model.input.sampleShape == [3, 8, 8])
        #expect(model.outputDim == 5)
        #expect(model.inputSize! == (8, 8))
        var rng = TestRandom(seed: 11)
        let x = (0..<(3 * 192)).map { _ in rng.normal() }
        let got = try model.makeSession(maxBatch: 4).run(x, batch: 3)
        let want = cnn.reference(x, batch: 3)
        #expect(got.count == want.count)
        #expect(maxAbsDiff(got, want) < 1e-4)
    }

    @Test func batchedRunEqualsPerSampleRuns() throws {
        let model = try EncoderModel(data: SmallCNN().data, source: "small")
        let session = try model.makeSession(maxBatch: 5)
        var rng = TestRandom(seed: 3)
        let x = (0..<(5 * 192)).map { _ in rng.normal() }
        let together = try session.run(x, batch: 5)
        var separate: [Float] = []
        for s in 0..<5 { separate += try session.run(Array(x[(s * 192)..<((s + 1) * 192)]), batch: 1) }
        #expect(maxAbsDiff(together, separate) < 1e-5)
    }

    @Test func fixedBatchFileRunsSampleBySample() throws {
        let cnn = SmallCNN(dynamicBatch: false)
        let model = try EncoderModel(data: cnn.data, source: "fixed")
        #expect(model.fixedBatch == 1)
        var rng = TestRandom(seed: 5)
        let x = (0..<(2 * 192)).map { _ in rng.normal() }
        let got = try model.makeSession(maxBatch: 2).run(x, batch: 2)
        #expect(maxAbsDiff(got, cnn.reference(x, batch: 2)) < 1e-4)
    }

    @Test func fingerprintIdentifiesWeights() throws {
        let a = try EncoderModel(data: SmallCNN(seed: 7).data, source: "a")
        let a2 = try EncoderModel(data: SmallCNN(seed: 7).data, source: "a2")
        let b = try EncoderModel(data: SmallCNN(seed: 8).data, source: "b")
        #expect(a.fingerprint == a2.fingerprint)
        #expect(a.fingerprint != b.fingerprint)
        #expect(a.fingerprint.count == 32)
        #expect(a.parameterCount == 4 * 27 + 4 + 16 + 24 + 30 + 5)
    }

    // MARK: refusals, each naming what and where

    func loadError(_ data: Data, spatial: (Int, Int)? = nil) -> ModelError? {
        do { _ = try EncoderModel(data: data, source: "t.onnx", spatialSize: spatial); return nil } catch let e as ModelError { return e } catch {
            Issue.record("non-ModelError \(error)"); return nil
        }
    }

    @Test func missingFileNamesThePath() {
        do {
            _ = try EncoderModel.load(path: "/nonexistent/encoder.onnx")
            Issue.record("loaded a missing file")
        } catch let e as ModelError {
            #expect(e.kind == .unreadable)
            #expect(e.message.contains("/nonexistent/encoder.onnx"))
        } catch {
            Issue.record("non-ModelError \(error)")
        }
    }

    @Test func unsupportedOperatorNamesNodeAndOperator() throws {
        var b = ModelBuilder()
        let y = b.node("Softmax", ["input"])
        let e = try #require(loadError(try b.model(dims: [nil, 3, 4, 4], output: y).serializedData()))
        #expect(e.kind == .unsupported)
        #expect(e.op == "Softmax")
        #expect(e.node == "n_Softmax_1")
        #expect(e.description.contains("Softmax"))
    }

    @Test func unsupportedAttributeIsNamed() throws {
        var b = ModelBuilder()
        let y = b.node("MaxPool", ["input"], attrs: [ModelBuilder.attr("kernel_shape", ints: [2, 2]), ModelBuilder.attr("storage_order", int: 1)])
        let e = try #require(loadError(try b.model(dims: [nil, 3, 4, 4], output: y).serializedData()))
        #expect(e.attribute == "storage_order")
        #expect(e.op == "MaxPool")
        var b2 = ModelBuilder()
        let y2 = b2.node("Relu", ["input"], attrs: [ModelBuilder.attr("bogus", int: 1)])
        let e2 = try #require(loadError(try b2.model(dims: [nil, 3, 4, 4], output: y2).serializedData()))
        #expect(e2.attribute == "bogus")
        #expect(e2.kind == .unsupported)
    }

    @Test func externalDataIsRefused() throws {
        var cnn = SmallCNN()
        cnn.proto.graph.initializer[0].dataLocation = .external
        let e = try #require(loadError(cnn.data))
        #expect(e.kind == .unsupported)
        #expect(e.message.contains("external data"))
        #expect(e.message.contains(cnn.proto.graph.initializer[0].name))
    }

    @Test func initializerSizeMismatchNamesTensor() throws {
        var cnn = SmallCNN()
        cnn.proto.graph.initializer[0].rawData = cnn.proto.graph.initializer[0].rawData.prefix(40)
        let e = try #require(loadError(cnn.data))
        #expect(e.kind == .invalid)
        #expect(e.message.contains("initializer '\(cnn.proto.graph.initializer[0].name)'"))
    }

    @Test func truncatedAndEmptyFilesAreUnreadable() throws {
        let data = SmallCNN().data
        let e = try #require(loadError(data.prefix(data.count / 2)))
        #expect(e.kind == .unreadable)
        let e2 = try #require(loadError(Data()))
        #expect(e2.kind == .invalid || e2.kind == .unreadable)
    }

    @Test func missingProducerIsReported() throws {
        var cnn = SmallCNN()
        cnn.proto.graph.node.swapAt(0, 2)  // Relu before the Conv that feeds it
        let e = try #require(loadError(cnn.data))
        #expect(e.kind == .invalid)
        #expect(e.message.contains("not produced"))
    }

    @Test func opsetOutsideRangeIsRefused() throws {
        var cnn = SmallCNN()
        cnn.proto.opsetImport[0].version = 9
        let e = try #require(loadError(cnn.data))
        #expect(e.kind == .unsupported)
        #expect(e.message.contains("opset 9"))
    }

    @Test func dynamicSpatialDimsNeedASize() throws {
        var b = ModelBuilder()
        let (w, _) = b.random([2, 3, 3, 3])
        let y = b.node("GlobalAveragePool", [b.node("Conv", ["input", w])])
        let data = try b.model(dims: [nil, 3, nil, nil], output: y).serializedData()
        let e = try #require(loadError(data))
        #expect(e.kind == .shape)
        #expect(e.message.contains("dimension 2 is dynamic"))
        let m = try EncoderModel(data: data, source: "dyn", spatialSize: (10, 12))
        #expect(m.input.sampleShape == [3, 10, 12])
        #expect(m.outputs[0].sampleShape == [2, 1, 1])
    }

    @Test func shapeMismatchNamesNode() throws {
        var b = ModelBuilder()
        let (w, _) = b.random([4, 5, 3, 3])  // expects 5 input channels, input has 3
        let y = b.node("Conv", ["input", w])
        let e = try #require(loadError(try b.model(dims: [nil, 3, 8, 8], output: y).serializedData()))
        #expect(e.kind == .shape)
        #expect(e.op == "Conv")
    }

    @Test func runRejectsBadBatch() throws {
        let session = try EncoderModel(data: SmallCNN().data, source: "s").makeSession(maxBatch: 2)
        #expect(throws: ModelError.self) { _ = try session.run([Float](repeating: 0, count: 3 * 192), batch: 3) }
        #expect(throws: ModelError.self) { _ = try session.run([Float](repeating: 0, count: 10), batch: 1) }
    }

    /// 1,000 mutated copies of a valid model: 500 at the byte level (flips, truncations, insertions,
    /// splices) and 500 at the protobuf level (attribute values, dims, operator types, node order,
    /// input names). Each must load or fail with a ModelError, and a loaded one must run. Fixed seed.
    @Test func fuzzedModelsNeverCrash() throws {
        let cnn = SmallCNN()
        let base = [UInt8](cnn.data)
        var rng = TestRandom(seed: 2024)
        var loaded = 0, refused = 0
        func attempt(_ data: Data) {
            do {
                let m = try EncoderModel(data: data, source: "fuzz")
                let s = try m.makeSession(maxBatch: 2)
                _ = try s.run([Float](repeating: 0.5, count: 2 * s.inputCountPerSample), batch: 2)
                loaded += 1
            } catch is ModelError {
                refused += 1
            } catch {
                Issue.record("unexpected error type: \(error)")
            }
        }
        let ops = ["Conv", "Relu", "Gemm", "Add", "Reshape", "Flatten", "MaxPool", "Concat", "Pad", "Resize", "Shape", "Gather",
                   "ConvTranspose", "BatchNormalization", "ReduceMean", "Squeeze", "Slice", "Expand", "Transpose", "Bogus"]
        let interesting: [Int64] = [0, 1, -1, 2, 3, 7, 1 << 20, 1 << 40, -(1 << 40), Int64.max, Int64.min]
        for _ in 0..<500 {
            var p = cnn.proto
            for _ in 0..<(1 + rng.below(3)) {
                let ni = rng.below(p.graph.node.count)
                switch rng.below(7) {
                case 0:
                    if !p.graph.node[ni].attribute.isEmpty {
                        let ai = rng.below(p.graph.node[ni].attribute.count)
                        p.graph.node[ni].attribute[ai].ints = p.graph.node[ni].attribute[ai].ints.map { _ in interesting[rng.below(interesting.count)] }
                        p.graph.node[ni].attribute[ai].i = interesting[rng.below(interesting.count)]
                    }
                case 1:
                    let ti = rng.below(p.graph.initializer.count)
                    if !p.graph.initializer[ti].dims.isEmpty {
                        p.graph.initializer[ti].dims[rng.below(p.graph.initializer[ti].dims.count)] = interesting[rng.below(interesting.count)]
                    }
                case 2: p.graph.node[ni].opType = ops[rng.below(ops.count)]
                case 3: p.graph.node.swapAt(ni, rng.below(p.graph.node.count))
                case 4:
                    if !p.graph.node[ni].input.isEmpty {
                        let other = p.graph.node[rng.below(p.graph.node.count)].output[0]
                        p.graph.node[ni].input[rng.below(p.graph.node[ni].input.count)] = rng.below(4) == 0 ? "" : other
                    }
                case 5:
                    p.graph.input[0].type.tensorType.shape.dim[rng.below(4)].dimValue = interesting[rng.below(interesting.count)]
                default: p.graph.node.remove(at: ni)
                }
                if p.graph.node.isEmpty { break }
            }
            attempt((try? p.serializedData()) ?? Data())
        }
        for _ in 0..<500 {
            var bytes = base
            for _ in 0..<(1 + rng.below(4)) {
                switch rng.below(5) {
                case 0: bytes[rng.below(bytes.count)] ^= UInt8(1 << rng.below(8))
                case 1: bytes[rng.below(bytes.count)] = UInt8(rng.below(256))
                case 2: bytes = Array(bytes.prefix(rng.below(bytes.count)))
                case 3: bytes.insert(contentsOf: (0..<(1 + rng.below(8))).map { _ in UInt8(rng.below(256)) }, at: rng.below(bytes.count))
                default:
                    let a = rng.below(bytes.count), len = min(1 + rng.below(32), bytes.count - a)
                    let d = rng.below(bytes.count)
                    bytes.replaceSubrange(d..<min(bytes.count, d + len), with: Array(bytes[a..<(a + len)]))
                }
                if bytes.isEmpty { bytes = [0] }
            }
            attempt(Data(bytes))
        }
        #expect(loaded + refused == 1000)
        #expect(refused > 0)
        #expect(loaded > 0)
    }
}
