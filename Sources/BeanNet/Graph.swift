import Foundation

// onnx.pb.swift is generated, committed, and never regenerated in CI: `protoc` 3.21 with
// protoc-gen-swift 1.39.0 (`--swift_opt=Visibility=Internal`) on the onnx.proto shipped in the
// onnx 1.23.2 wheel. To regenerate, build protoc-gen-swift from swift-protobuf 1.39.0 and run
// `protoc --plugin=protoc-gen-swift=… --swift_out=. --swift_opt=Visibility=Internal onnx.proto`.

/// A constant tensor known at load time: an initializer, a `Constant` node, or a folded result.
struct ConstTensor: Sendable {
    enum Storage: Sendable {
        case float([Float])
        case int([Int64])
    }
    var shape: [Int]
    var storage: Storage

    init(shape: [Int], floats: [Float]) { self.shape = shape; self.storage = .float(floats) }
    init(shape: [Int], ints: [Int64]) { self.shape = shape; self.storage = .int(ints) }
    init(shape: [Int], storage: Storage) { self.shape = shape; self.storage = storage }

    var count: Int { shape.reduce(1, *) }
    var isInt: Bool { if case .int = storage { return true } else { return false } }

    var floats: [Float] {
        switch storage {
        case .float(let f): return f
        case .int(let i): return i.map { Float($0) }
        }
    }
    var ints: [Int64] {
        switch storage {
        case .int(let i): return i
        case .float(let f): return f.map { Int64($0) }
        }
    }
}

/// A dimension of a graph input as the file declares it.
enum DeclaredDim: Sendable, Equatable {
    case fixed(Int)
    case symbolic(String)
}

struct GraphValueInfo: Sendable {
    var name: String
    var dims: [DeclaredDim]?
}

enum AttributeValue: Sendable {
    case int(Int64)
    case ints([Int64])
    case float(Float)
    case floats([Float])
    case string(String)
    case tensor(ConstTensor)
    case unsupported(String)
}

/// One ONNX node with its attributes decoded; accessors throw errors that name node and attribute.
struct GraphNode: Sendable {
    var name: String
    var op: String
    var inputs: [String]
    var outputs: [String]
    var attributes: [String: AttributeValue]

    func error(_ kind: ModelError.Kind, _ message: String, attribute: String? = nil) -> ModelError {
        ModelError(kind, message, node: name, op: op, attribute: attribute)
    }

    func int(_ key: String, default value: Int) throws -> Int {
        guard let attr = attributes[key] else { return value }
        guard case .int(let v) = attr else { throw error(.invalid, "expected an integer", attribute: key) }
        return Int(v)
    }
    func ints(_ key: String) throws -> [Int]? {
        guard let attr = attributes[key] else { return nil }
        switch attr {
        case .ints(let v): return v.map { Int($0) }
        case .int(let v): return [Int(v)]
        default: throw error(.invalid, "expected a list of integers", attribute: key)
        }
    }
    func float(_ key: String, default value: Float) throws -> Float {
        guard let attr = attributes[key] else { return value }
        switch attr {
        case .float(let v): return v
        case .int(let v): return Float(v)
        default: throw error(.invalid, "expected a float", attribute: key)
        }
    }
    func floats(_ key: String) throws -> [Float]? {
        guard let attr = attributes[key] else { return nil }
        guard case .floats(let v) = attr else { throw error(.invalid, "expected a list of floats", attribute: key) }
        return v
    }
    func string(_ key: String, default value: String) throws -> String {
        guard let attr = attributes[key] else { return value }
        guard case .string(let v) = attr else { throw error(.invalid, "expected a string", attribute: key) }
        return v
    }
    /// Input `index` or nil when absent or given as the empty name (ONNX's "omitted optional input").
    func input(_ index: Int) -> String? {
        index < inputs.count && !inputs[index].isEmpty ? inputs[index] : nil
    }
}

/// The decoded graph: nodes in file order, initializers, the real (non-initializer) inputs, outputs.
struct Graph: Sendable {
    var opset: Int
    var nodes: [GraphNode]
    var initializers: [String: ConstTensor]
    /// Initializer names in file order, for a deterministic fingerprint.
    var initializerOrder: [String]
    var inputs: [GraphValueInfo]
    var outputs: [String]
    var producer: String

    static let supportedOpsets = 13...18

    init(onnx data: Data, source: String) throws {
        let model: Onnx_ModelProto
        do {
            model = try Onnx_ModelProto(serializedBytes: data)
        } catch {
            throw ModelError(.unreadable, "\(source) is not a valid ONNX model (protobuf decoding failed: \(error))")
        }
        guard model.hasGraph else { throw ModelError(.invalid, "\(source) holds no graph") }
        var opset: Int?
        for imp in model.opsetImport {
            if imp.domain.isEmpty || imp.domain == "ai.onnx" { opset = Int(imp.version) }
        }
        guard let opset else { throw ModelError(.invalid, "\(source) declares no ai.onnx opset") }
        guard Graph.supportedOpsets.contains(opset) else {
            throw ModelError(.unsupported, "opset \(opset) (supported: \(Graph.supportedOpsets.lowerBound)–\(Graph.supportedOpsets.upperBound))")
        }
        self.opset = opset
        self.producer = model.producerName + (model.producerVersion.isEmpty ? "" : " " + model.producerVersion)
        let g = model.graph

        var initializers: [String: ConstTensor] = [:]
        var order: [String] = []
        for t in g.initializer {
            let c = try Graph.decode(tensor: t, what: "initializer '\(t.name)'")
            if initializers[t.name] == nil { order.append(t.name) }
            initializers[t.name] = c
        }
        self.initializers = initializers
        self.initializerOrder = order

        self.inputs = try g.input.filter { initializers[$0.name] == nil }.map { vi in
            guard case .tensorType(let tt)? = vi.type.value else {
                throw ModelError(.unsupported, "graph input '\(vi.name)' is not a tensor")
            }
            guard tt.elemType == Int32(Onnx_TensorProto.DataType.float.rawValue) else {
                throw ModelError(.unsupported, "graph input '\(vi.name)' has element type \(tt.elemType); only float32 inputs are supported")
            }
            var dims: [DeclaredDim]?
            if tt.hasShape {
                dims = tt.shape.dim.map { d in
                    if case .dimValue(let v)? = d.value, v > 0 { return .fixed(Int(v)) }
                    if case .dimParam(let p)? = d.value { return .symbolic(p) }
                    return .symbolic("?")
                }
            }
            return GraphValueInfo(name: vi.name, dims: dims)
        }
        self.outputs = g.output.map(\.name)
        guard !self.outputs.isEmpty else { throw ModelError(.invalid, "\(source): graph declares no outputs") }

        self.nodes = try g.node.enumerated().map { index, n in
            let name = n.name.isEmpty ? "#\(index)" : n.name
            if !(n.domain.isEmpty || n.domain == "ai.onnx") {
                throw ModelError(.unsupported, "operator domain '\(n.domain)' is not supported", node: name, op: n.opType)
            }
            var attrs: [String: AttributeValue] = [:]
            for a in n.attribute {
                attrs[a.name] = try Graph.decode(attribute: a, node: name, op: n.opType)
            }
            return GraphNode(name: name, op: n.opType, inputs: n.input, outputs: n.output, attributes: attrs)
        }
    }

    static func decode(attribute a: Onnx_AttributeProto, node: String, op: String) throws -> AttributeValue {
        if !a.refAttrName.isEmpty {
            throw ModelError(.unsupported, "attribute references (function bodies) are not supported", node: node, op: op, attribute: a.name)
        }
        switch a.type {
        case .float: return .float(a.f)
        case .int: return .int(a.i)
        case .string: return .string(String(decoding: a.s, as: UTF8.self))
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints)
        case .tensor:
            return .tensor(try decode(tensor: a.t, what: "attribute '\(a.name)' of node '\(node)' (\(op))"))
        case .undefined:
            // Old exporters leave `type` unset; infer it from the populated field.
            if a.hasT { return .tensor(try decode(tensor: a.t, what: "attribute '\(a.name)' of node '\(node)' (\(op))")) }
            if !a.ints.isEmpty { return .ints(a.ints) }
            if !a.floats.isEmpty { return .floats(a.floats) }
            if a.hasS { return .string(String(decoding: a.s, as: UTF8.self)) }
            if a.hasF { return .float(a.f) }
            if a.hasI { return .int(a.i) }
            return .unsupported("undefined")
        default:
            return .unsupported("\(a.type)")
        }
    }

    static func decode(tensor t: Onnx_TensorProto, what: String) throws -> ConstTensor {
        if t.dataLocation == .external || !t.externalData.isEmpty {
            throw ModelError(.unsupported, "\(what) uses external data; only self-contained .onnx files are supported")
        }
        if t.hasSegment { throw ModelError(.unsupported, "\(what) is segmented") }
        var shape: [Int] = []
        var count = 1
        for d in t.dims {
            guard d >= 0, d < (1 << 31) else { throw ModelError(.invalid, "\(what) has invalid dimension \(d)") }
            shape.append(Int(d))
            let (p, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, p < (1 << 31) else { throw ModelError(.invalid, "\(what) is too large (dims \(t.dims))") }
            count = p
        }
        let raw = t.rawData
        func check(_ n: Int, _ field: String) throws {
            guard n == count else {
                throw ModelError(.invalid, "\(what) has \(n) values in \(field) but its dims \(shape) need \(count)")
            }
        }
        typealias DT = Onnx_TensorProto.DataType
        switch DT(rawValue: Int(t.dataType)) {
        case .float?:
            if t.hasRawData {
                try check(raw.count / 4, "raw_data")
                guard raw.count % 4 == 0 else { throw ModelError(.invalid, "\(what): raw_data length \(raw.count) is not a multiple of 4") }
                var out = [Float](repeating: 0, count: count)
                out.withUnsafeMutableBytes { dst in _ = raw.copyBytes(to: dst) }
                // ONNX raw_data is little-endian, as is every machine this runs on.
                return ConstTensor(shape: shape, floats: out)
            }
            try check(t.floatData.count, "float_data")
            return ConstTensor(shape: shape, floats: t.floatData)
        case .double?:
            if t.hasRawData {
                guard raw.count == count * 8 else { throw ModelError(.invalid, "\(what): raw_data holds \(raw.count) bytes, dims \(shape) need \(count * 8)") }
                var d = [Double](repeating: 0, count: count)
                d.withUnsafeMutableBytes { dst in _ = raw.copyBytes(to: dst) }
                return ConstTensor(shape: shape, floats: d.map { Float($0) })
            }
            try check(t.doubleData.count, "double_data")
            return ConstTensor(shape: shape, floats: t.doubleData.map { Float($0) })
        case .int64?:
            if t.hasRawData {
                guard raw.count == count * 8 else { throw ModelError(.invalid, "\(what): raw_data holds \(raw.count) bytes, dims \(shape) need \(count * 8)") }
                var out = [Int64](repeating: 0, count: count)
                out.withUnsafeMutableBytes { dst in _ = raw.copyBytes(to: dst) }
                return ConstTensor(shape: shape, ints: out)
            }
            try check(t.int64Data.count, "int64_data")
            return ConstTensor(shape: shape, ints: t.int64Data)
        case .int32?, .int16?, .int8?, .uint8?, .uint16?, .bool?:
            if t.hasRawData {
                let width: Int
                switch DT(rawValue: Int(t.dataType)) {
                case .int32?: width = 4
                case .int16?, .uint16?: width = 2
                default: width = 1
                }
                guard raw.count == count * width else { throw ModelError(.invalid, "\(what): raw_data holds \(raw.count) bytes, dims \(shape) need \(count * width)") }
                let bytes = [UInt8](raw)
                var out = [Int64](repeating: 0, count: count)
                for i in 0..<count {
                    var v: Int64 = 0
                    switch (width, DT(rawValue: Int(t.dataType))) {
                    case (4, _): v = Int64(Int32(bitPattern: UInt32(bytes[4*i]) | UInt32(bytes[4*i+1]) << 8 | UInt32(bytes[4*i+2]) << 16 | UInt32(bytes[4*i+3]) << 24))
                    case (2, .int16?): v = Int64(Int16(bitPattern: UInt16(bytes[2*i]) | UInt16(bytes[2*i+1]) << 8))
                    case (2, _): v = Int64(UInt16(bytes[2*i]) | UInt16(bytes[2*i+1]) << 8)
                    case (1, .int8?): v = Int64(Int8(bitPattern: bytes[i]))
                    default: v = Int64(bytes[i])
                    }
                    out[i] = v
                }
                return ConstTensor(shape: shape, ints: out)
            }
            try check(t.int32Data.count, "int32_data")
            return ConstTensor(shape: shape, ints: t.int32Data.map { Int64($0) })
        default:
            throw ModelError(.unsupported, "\(what) has data type \(t.dataType); supported: float, double, int64, int32, int16, int8, uint8, bool")
        }
    }
}
