/// Why a model cannot be loaded or run. Every case names where the problem is (file, node, operator,
/// attribute, tensor) so that `beanctl model info` can print the exact reason.
public struct ModelError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The file cannot be read or is not a valid ONNX protobuf.
        case unreadable
        /// The model uses an operator, attribute value, opset or data type this runtime lacks.
        case unsupported
        /// The model is structurally invalid (missing input, wrong tensor size, bad attribute).
        case invalid
        /// A shape could not be resolved or two shapes disagree.
        case shape
        /// A call at run time did not match the model (wrong input size, batch too large).
        case usage
    }

    public var kind: Kind
    public var message: String
    /// `node 'name' (Op)` when the error belongs to a node.
    public var node: String?
    public var op: String?
    public var attribute: String?

    public init(_ kind: Kind, _ message: String, node: String? = nil, op: String? = nil, attribute: String? = nil) {
        self.kind = kind
        self.message = message
        self.node = node
        self.op = op
        self.attribute = attribute
    }

    public var description: String {
        var parts: [String] = []
        if let op {
            parts.append("node '\(node ?? "?")' (\(op))")
        }
        if let attribute { parts.append("attribute '\(attribute)'") }
        let prefix = parts.isEmpty ? "" : parts.joined(separator: ", ") + ": "
        return "\(kind.rawValue): \(prefix)\(message)"
    }
}
