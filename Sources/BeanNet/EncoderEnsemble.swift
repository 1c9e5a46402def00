import Foundation
import SwiftProtobuf

/// Several encoders as one ONNX encoder: each runs on the same input, and the output is the
/// concatenation of their embeddings, L2-normalised. For unit-length members the cosine between
/// two such embeddings is the mean of the members' cosines, so a kNN store built with it ranks by
/// the members' averaged similarity. Differently trained trunks make different mistakes; on the
/// Mindforge photos two in one encoder gained 0.002–0.016 AUC over the better one (MODEL_CARD.md,
/// "Two trunks in one encoder"), for the sum of the members' work.
public enum EncoderEnsemble {
    /// The combined model's input and output names.
    public static let inputName = "input", outputName = "embedding"

    /// `members` are the ONNX files' bytes, `sources` their names for errors. Every member must
    /// have one float input of the same declared sample shape ([C, H, W]) and one output; their
    /// opsets must lie in the runtime's range (the combined model declares the highest).
    public static func combine(_ members: [Data], sources: [String]) throws -> Data {
        guard members.count >= 2, members.count == sources.count else {
            throw ModelError(.usage, "an ensemble needs at least two encoders, got \(members.count)")
        }
        var nodes: [Onnx_NodeProto] = [], initializers: [Onnx_TensorProto] = []
        var outputs: [String] = [], outputWidths: [Int64?] = []
        var sampleShape: [Onnx_TensorShapeProto.Dimension]?
        var opset: Int64 = 0, irVersion: Int64 = 0
        for (index, (bytes, source)) in zip(members, sources).enumerated() {
            let model: Onnx_ModelProto
            do { model = try Onnx_ModelProto(serializedBytes: bytes) } catch {
                throw ModelError(.unreadable, "\(source) is not a valid ONNX model (protobuf decoding failed: \(error))")
            }
            guard model.hasGraph else { throw ModelError(.invalid, "\(source) holds no graph") }
            let memberOpset = model.opsetImport.first { $0.domain.isEmpty || $0.domain == "ai.onnx" }?.version
            guard let memberOpset, Graph.supportedOpsets.contains(Int(memberOpset)) else {
                throw ModelError(.unsupported, "\(source): opset \(memberOpset.map(String.init) ?? "none") (supported: \(Graph.supportedOpsets.lowerBound)–\(Graph.supportedOpsets.upperBound))")
            }
            opset = max(opset, memberOpset)
            irVersion = max(irVersion, model.irVersion)
            let graph = model.graph
            let initializerNames = Set(graph.initializer.map(\.name))
            let inputs = graph.input.filter { !initializerNames.contains($0.name) }
            guard inputs.count == 1, graph.output.count == 1 else {
                throw ModelError(.unsupported, "\(source): an ensemble member needs one input and one output, it has \(inputs.count) and \(graph.output.count)")
            }
            guard case .tensorType(let input)? = inputs[0].type.value, input.elemType == Int32(Onnx_TensorProto.DataType.float.rawValue) else {
                throw ModelError(.unsupported, "\(source): input '\(inputs[0].name)' is not a float tensor")
            }
            let dims = Array(input.shape.dim.dropFirst())
            if let sampleShape, sampleShape != dims {
                throw ModelError(.shape, "\(source) takes input \(describe(dims)), \(sources[0]) takes \(describe(sampleShape)): the members must see the same crop")
            }
            sampleShape = dims
            if case .tensorType(let output)? = graph.output[0].type.value, output.shape.dim.count == 2,
               case .dimValue(let width)? = output.shape.dim[1].value {
                outputWidths.append(width)
            } else {
                outputWidths.append(nil)
            }

            // Every name of member i gets the prefix "m<i>_", except the shared input.
            let prefix = "m\(index)_", inputName = inputs[0].name
            func renamed(_ name: String) -> String {
                name.isEmpty ? name : name == inputName ? Self.inputName : prefix + name
            }
            for node in graph.node {
                if node.attribute.contains(where: { $0.hasG || !$0.graphs.isEmpty }) {
                    throw ModelError(.unsupported, "\(source): subgraphs are not supported in an ensemble", node: node.name, op: node.opType)
                }
                var copy = node
                copy.name = prefix + (node.name.isEmpty ? "node\(nodes.count)" : node.name)
                copy.input = node.input.map(renamed)
                copy.output = node.output.map(renamed)
                nodes.append(copy)
            }
            for tensor in graph.initializer {
                var copy = tensor
                copy.name = prefix + tensor.name
                initializers.append(copy)
            }
            outputs.append(renamed(graph.output[0].name))
        }

        var concat = Onnx_NodeProto()
        concat.opType = "Concat"; concat.name = "ensemble_concat"
        concat.input = outputs; concat.output = ["ensemble_concat"]
        var axis = Onnx_AttributeProto()
        axis.name = "axis"; axis.type = .int; axis.i = 1
        concat.attribute = [axis]
        var normalise = Onnx_NodeProto()
        normalise.opType = "LpNormalization"; normalise.name = "ensemble_normalise"
        normalise.input = ["ensemble_concat"]; normalise.output = [outputName]
        var p = Onnx_AttributeProto()
        p.name = "p"; p.type = .int; p.i = 2
        normalise.attribute = [axis, p]
        nodes += [concat, normalise]

        var graph = Onnx_GraphProto()
        graph.name = "encoder ensemble"
        graph.node = nodes
        graph.initializer = initializers
        let width: Int64? = outputWidths.contains(nil) ? nil : outputWidths.compactMap { $0 }.reduce(0, +)
        let batch = ONNXExport.symbolicDimension("N")
        graph.input = [ONNXExport.valueInfo(inputName, shape: [batch] + (sampleShape ?? []))]
        graph.output = [ONNXExport.valueInfo(outputName, shape: [batch, width.map(ONNXExport.fixedDimension) ?? ONNXExport.symbolicDimension("D")])]
        var model = Onnx_ModelProto()
        model.irVersion = irVersion
        model.producerName = "beanctl model combine"
        var operatorSet = Onnx_OperatorSetIdProto()
        operatorSet.domain = ""; operatorSet.version = opset
        model.opsetImport = [operatorSet]
        model.graph = graph
        do { return try model.serializedData() } catch {
            throw ModelError(.invalid, "cannot serialise the ensemble: \(error)")
        }
    }

    static func describe(_ dims: [Onnx_TensorShapeProto.Dimension]) -> String {
        "[" + dims.map { d -> String in
            if case .dimValue(let v)? = d.value { return String(v) }
            if case .dimParam(let p)? = d.value { return p }
            return "?"
        }.joined(separator: ", ") + "]"
    }
}
