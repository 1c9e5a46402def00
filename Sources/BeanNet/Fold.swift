import Foundation

/// Load-time evaluation of nodes whose inputs are all known: the shape subgraphs PyTorch exports
/// (Shape → Gather → Unsqueeze → Concat → Reshape) and small constant arithmetic.
enum Folder {
    static let foldable: Set<String> = [
        "Constant", "Shape", "Size", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Reshape", "Flatten",
        "Identity", "Add", "Sub", "Mul", "Div", "Neg", "Slice", "ConstantOfShape", "Range", "Equal", "Where",
        "Expand", "Transpose", "Sqrt", "Relu", "Abs",
    ]

    /// Element count of `shape`, refusing negative dims and counts beyond 2^36 (no overflow traps on
    /// corrupt files).
    static func volume(_ shape: [Int], node: GraphNode) throws -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw node.error(.shape, "negative dimension in \(shape)") }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            guard !o, p <= (1 << 36) else { throw node.error(.shape, "shape \(shape) is too large") }
            n = p
        }
        return n
    }

    /// Broadcast shape per ONNX (numpy) rules.
    static func broadcast(_ a: [Int], _ b: [Int], node: GraphNode) throws -> [Int] {
        let r = max(a.count, b.count)
        var out = [Int](repeating: 1, count: r)
        for i in 0..<r {
            let x = i < r - a.count ? 1 : a[i - (r - a.count)]
            let y = i < r - b.count ? 1 : b[i - (r - b.count)]
            guard x == y || x == 1 || y == 1 else {
                throw node.error(.shape, "shapes \(a) and \(b) cannot be broadcast")
            }
            out[i] = x == 1 ? y : x
        }
        _ = try volume(out, node: node)
        return out
    }

    /// Row-major strides of `shape` right-aligned into `rank` dims, 0 where the dim broadcasts.
    static func broadcastStrides(_ shape: [Int], to out: [Int]) -> [Int] {
        let r = out.count
        var strides = [Int](repeating: 0, count: r)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            let o = i + (r - shape.count)
            strides[o] = shape[i] == 1 && out[o] != 1 ? 0 : s
            s *= shape[i]
        }
        return strides
    }

    static func normAxis(_ axis: Int, rank: Int, node: GraphNode, attribute: String = "axis") throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0 && a < max(rank, 1) else {
            throw node.error(.invalid, "axis \(axis) out of range for rank \(rank)", attribute: attribute)
        }
        return a
    }

    /// Evaluates `node`. `inputs[i]` is the constant input i (nil when omitted), `shapes[i]` its shape,
    /// known even for runtime values (that is what makes `Shape` foldable).
    static func evaluate(_ node: GraphNode, inputs: [ConstTensor?], shapes: [[Int]?], opset: Int) throws -> [ConstTensor] {
        func need(_ i: Int) throws -> ConstTensor {
            guard i < inputs.count, let t = inputs[i] else { throw node.error(.invalid, "missing input \(i)") }
            return t
        }
        switch node.op {
        case "Constant":
            if let a = node.attributes["value"], case .tensor(let t) = a { return [t] }
            if let a = node.attributes["value_float"], case .float(let f) = a { return [ConstTensor(shape: [], floats: [f])] }
            if let a = node.attributes["value_floats"], case .floats(let f) = a { return [ConstTensor(shape: [f.count], floats: f)] }
            if let a = node.attributes["value_int"], case .int(let i) = a { return [ConstTensor(shape: [], ints: [i])] }
            if let a = node.attributes["value_ints"], case .ints(let i) = a { return [ConstTensor(shape: [i.count], ints: i)] }
            throw node.error(.unsupported, "Constant needs one of value, value_float(s), value_int(s)",
                             attribute: node.attributes.keys.sorted().first)
        case "Shape":
            guard let s = shapes.first ?? nil else { throw node.error(.shape, "shape of input unknown") }
            let r = s.count
            var start = try node.int("start", default: 0), end = try node.int("end", default: r)
            if start < 0 { start += r }; if end < 0 { end += r }
            start = min(max(start, 0), r); end = min(max(end, start), r)
            return [ConstTensor(shape: [end - start], ints: s[start..<end].map { Int64($0) })]
        case "Size":
            guard let s = shapes.first ?? nil else { throw node.error(.shape, "shape of input unknown") }
            return [ConstTensor(shape: [], ints: [Int64(s.reduce(1, *))])]
        case "Identity":
            return [try need(0)]
        case "Cast":
            let x = try need(0)
            let to = try node.int("to", default: 1)
            switch to {
            case 1, 10, 11, 16: return [ConstTensor(shape: x.shape, floats: x.floats)]
            case 6, 7, 2, 3, 4, 5, 9, 12, 13: return [ConstTensor(shape: x.shape, ints: x.ints)]
            default: throw node.error(.unsupported, "cast to data type \(to)", attribute: "to")
            }
        case "Neg", "Sqrt", "Relu", "Abs":
            let x = try need(0)
            if x.isInt, node.op != "Sqrt" {
                let v = x.ints.map { i -> Int64 in node.op == "Neg" ? -i : (node.op == "Abs" ? Swift.abs(i) : Swift.max(i, 0)) }
                return [ConstTensor(shape: x.shape, ints: v)]
            }
            let v = x.floats.map { f -> Float in
                switch node.op {
                case "Neg": return -f
                case "Sqrt": return f.squareRoot()
                case "Abs": return Swift.abs(f)
                default: return Swift.max(f, 0)
                }
            }
            return [ConstTensor(shape: x.shape, floats: v)]
        case "Add", "Sub", "Mul", "Div", "Equal":
            let a = try need(0), b = try need(1)
            let shape = try broadcast(a.shape, b.shape, node: node)
            let n = shape.reduce(1, *)
            let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
            func index(_ flat: Int, _ st: [Int]) -> Int {
                var rem = flat, off = 0
                for d in stride(from: shape.count - 1, through: 0, by: -1) {
                    off += (rem % shape[d]) * st[d]; rem /= shape[d]
                }
                return off
            }
            if a.isInt && b.isInt {
                let x = a.ints, y = b.ints
                var out = [Int64](repeating: 0, count: n)
                for i in 0..<n {
                    let p = x[index(i, sa)], q = y[index(i, sb)]
                    switch node.op {
                    case "Add": out[i] = p &+ q
                    case "Sub": out[i] = p &- q
                    case "Mul": out[i] = p &* q
                    case "Equal": out[i] = p == q ? 1 : 0
                    default:
                        guard q != 0 else { throw node.error(.invalid, "integer division by zero") }
                        out[i] = p / q
                    }
                }
                return [ConstTensor(shape: shape, ints: out)]
            }
            let x = a.floats, y = b.floats
            var out = [Float](repeating: 0, count: n)
            for i in 0..<n {
                let p = x[index(i, sa)], q = y[index(i, sb)]
                switch node.op {
                case "Add": out[i] = p + q
                case "Sub": out[i] = p - q
                case "Mul": out[i] = p * q
                case "Equal": out[i] = p == q ? 1 : 0
                default: out[i] = p / q
                }
            }
            if node.op == "Equal" { return [ConstTensor(shape: shape, ints: out.map { Int64($0) })] }
            return [ConstTensor(shape: shape, floats: out)]
        case "Where":
            let c = try need(0), a = try need(1), b = try need(2)
            let shape = try broadcast(try broadcast(c.shape, a.shape, node: node), b.shape, node: node)
            let n = shape.reduce(1, *)
            let sc = broadcastStrides(c.shape, to: shape), sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
            func index(_ flat: Int, _ st: [Int]) -> Int {
                var rem = flat, off = 0
                for d in stride(from: shape.count - 1, through: 0, by: -1) { off += (rem % shape[d]) * st[d]; rem /= shape[d] }
                return off
            }
            let cv = c.ints
            if a.isInt && b.isInt {
                let x = a.ints, y = b.ints
                return [ConstTensor(shape: shape, ints: (0..<n).map { cv[index($0, sc)] != 0 ? x[index($0, sa)] : y[index($0, sb)] })]
            }
            let x = a.floats, y = b.floats
            return [ConstTensor(shape: shape, floats: (0..<n).map { cv[index($0, sc)] != 0 ? x[index($0, sa)] : y[index($0, sb)] })]
        case "Gather":
            let data = try need(0), idx = try need(1)
            let axis = try normAxis(try node.int("axis", default: 0), rank: data.shape.count, node: node)
            let outer = data.shape[..<axis].reduce(1, *)
            let inner = data.shape[(axis + 1)...].reduce(1, *)
            let extent = data.shape[axis]
            var picks: [Int] = []
            for i in idx.ints {
                let j = i < 0 ? Int(i) + extent : Int(i)
                guard j >= 0 && j < extent else { throw node.error(.invalid, "index \(i) out of range 0..<\(extent)") }
                picks.append(j)
            }
            let shape = Array(data.shape[..<axis]) + idx.shape + Array(data.shape[(axis + 1)...])
            func gather<T>(_ v: [T]) -> [T] {
                var out: [T] = []
                out.reserveCapacity(outer * picks.count * inner)
                for o in 0..<outer { for p in picks { out.append(contentsOf: v[(o * extent + p) * inner ..< (o * extent + p + 1) * inner]) } }
                return out
            }
            if data.isInt { return [ConstTensor(shape: shape, ints: gather(data.ints))] }
            return [ConstTensor(shape: shape, floats: gather(data.floats))]
        case "Unsqueeze", "Squeeze":
            let x = try need(0)
            var axes: [Int]
            if opset >= 13 { axes = (inputs.count > 1 ? inputs[1] : nil)?.ints.map { Int($0) } ?? [] } else { axes = try node.ints("axes") ?? [] }
            let shape = try reshapeForSqueeze(node, x.shape, axes: axes)
            return [ConstTensor(shape: shape, storage: x.storage)]
        case "Reshape":
            let x = try need(0), s = try need(1)
            let shape = try resolveReshape(node, from: x.shape, to: s.ints.map { Int($0) }, allowZero: try node.int("allowzero", default: 0) != 0)
            return [ConstTensor(shape: shape, storage: x.storage)]
        case "Flatten":
            let x = try need(0)
            let axis = try normAxis(try node.int("axis", default: 1), rank: x.shape.count + 1, node: node)
            return [ConstTensor(shape: [x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)], storage: x.storage)]
        case "Concat":
            let parts = inputs.compactMap { $0 }
            guard let first = parts.first else { throw node.error(.invalid, "no inputs") }
            let axis = try normAxis(try node.int("axis", default: 0), rank: first.shape.count, node: node)
            let outer = first.shape[..<axis].reduce(1, *)
            var shape = first.shape
            shape[axis] = 0
            for p in parts {
                guard p.shape.count == first.shape.count else { throw node.error(.shape, "inputs of rank \(first.shape.count) and \(p.shape.count)") }
                shape[axis] += p.shape[axis]
            }
            let allInt = parts.allSatisfy(\.isInt)
            var ints: [Int64] = [], floats: [Float] = []
            for o in 0..<outer {
                for p in parts {
                    let chunk = p.count / max(outer, 1)
                    if allInt { ints += p.ints[o * chunk ..< (o + 1) * chunk] } else { floats += p.floats[o * chunk ..< (o + 1) * chunk] }
                }
            }
            return [allInt ? ConstTensor(shape: shape, ints: ints) : ConstTensor(shape: shape, floats: floats)]
        case "Slice":
            let x = try need(0)
            let starts = try need(1).ints, ends = try need(2).ints
            let axes = (inputs.count > 3 ? inputs[3] : nil)?.ints.map { Int($0) } ?? Array(0..<starts.count)
            let steps = (inputs.count > 4 ? inputs[4] : nil)?.ints ?? Array(repeating: 1, count: starts.count)
            guard starts.count == ends.count, axes.count == starts.count, steps.count == starts.count else {
                throw node.error(.invalid, "starts/ends/axes/steps lengths differ")
            }
            // Per-dimension index lists, then a gather over their product.
            var picks: [[Int]] = x.shape.map { Array(0..<$0) }
            for (k, a0) in axes.enumerated() {
                let a = try normAxis(a0, rank: x.shape.count, node: node)
                let dim = x.shape[a]
                let step = Int(steps[k])
                guard step != 0 else { throw node.error(.invalid, "slice step 0") }
                func clampIndex(_ v: Int64, _ lo: Int, _ hi: Int) -> Int {
                    var i = v < -(1 << 40) ? -(1 << 40) : (v > (1 << 40) ? (1 << 40) : Int(v))
                    if i < 0 { i += dim }
                    return min(max(i, lo), hi)
                }
                var list: [Int] = []
                if step > 0 {
                    var i = clampIndex(starts[k], 0, dim); let e = clampIndex(ends[k], 0, dim)
                    while i < e { list.append(i); i += step }
                } else {
                    var i = clampIndex(starts[k], 0, dim - 1); let e = clampIndex(ends[k], -1, dim - 1)
                    while i > e { list.append(i); i += step }
                }
                picks[a] = list
            }
            let shape = picks.map(\.count)
            let n = shape.reduce(1, *)
            let strides = broadcastStrides(x.shape, to: x.shape)
            var offsets: [Int] = []
            offsets.reserveCapacity(n)
            for flat in 0..<n {
                var rem = flat, off = 0
                for d in stride(from: shape.count - 1, through: 0, by: -1) { off += picks[d][rem % shape[d]] * strides[d]; rem /= shape[d] }
                offsets.append(off)
            }
            if x.isInt { let v = x.ints; return [ConstTensor(shape: shape, ints: offsets.map { v[$0] })] }
            let v = x.floats
            return [ConstTensor(shape: shape, floats: offsets.map { v[$0] })]
        case "ConstantOfShape":
            let s = try need(0).ints.map { Int($0) }
            guard try volume(s, node: node) < (1 << 26) else { throw node.error(.invalid, "shape \(s) too large") }
            let n = s.reduce(1, *)
            if let a = node.attributes["value"], case .tensor(let t) = a {
                if t.isInt { return [ConstTensor(shape: s, ints: Array(repeating: t.ints.first ?? 0, count: n))] }
                return [ConstTensor(shape: s, floats: Array(repeating: t.floats.first ?? 0, count: n))]
            }
            return [ConstTensor(shape: s, floats: Array(repeating: 0, count: n))]
        case "Range":
            let s = try need(0), l = try need(1), d = try need(2)
            if s.isInt {
                let a = s.ints.first ?? 0, b = l.ints.first ?? 0, st = d.ints.first ?? 1
                guard st != 0 else { throw node.error(.invalid, "range delta 0") }
                let n = max(0, Int((Double(b - a) / Double(st)).rounded(.up)))
                guard n < (1 << 24) else { throw node.error(.invalid, "range too long") }
                return [ConstTensor(shape: [n], ints: (0..<n).map { a + Int64($0) * st })]
            }
            let a = s.floats.first ?? 0, b = l.floats.first ?? 0, st = d.floats.first ?? 1
            guard st != 0 else { throw node.error(.invalid, "range delta 0") }
            let n = max(0, Int(((b - a) / st).rounded(.up)))
            guard n < (1 << 24) else { throw node.error(.invalid, "range too long") }
            return [ConstTensor(shape: [n], floats: (0..<n).map { a + Float($0) * st })]
        case "Expand":
            let x = try need(0), s = try need(1).ints.map { Int($0) }
            let shape = try broadcast(x.shape, s, node: node)
            guard try volume(shape, node: node) < (1 << 26) else { throw node.error(.invalid, "expanded shape \(shape) too large") }
            let st = broadcastStrides(x.shape, to: shape)
            let n = shape.reduce(1, *)
            let offsets = (0..<n).map { flat -> Int in
                var rem = flat, off = 0
                for d in stride(from: shape.count - 1, through: 0, by: -1) { off += (rem % shape[d]) * st[d]; rem /= shape[d] }
                return off
            }
            if x.isInt { let v = x.ints; return [ConstTensor(shape: shape, ints: offsets.map { v[$0] })] }
            let v = x.floats
            return [ConstTensor(shape: shape, floats: offsets.map { v[$0] })]
        case "Transpose":
            let x = try need(0)
            let r = x.shape.count
            let perm = try node.ints("perm") ?? Array((0..<r).reversed())
            guard perm.count == r, Set(perm) == Set(0..<r) else { throw node.error(.invalid, "perm \(perm) for rank \(r)", attribute: "perm") }
            let shape = perm.map { x.shape[$0] }
            let src = broadcastStrides(x.shape, to: x.shape)
            let st = perm.map { src[$0] }
            let n = x.count
            let offsets = (0..<n).map { flat -> Int in
                var rem = flat, off = 0
                for d in stride(from: r - 1, through: 0, by: -1) { off += (rem % shape[d]) * st[d]; rem /= shape[d] }
                return off
            }
            if x.isInt { let v = x.ints; return [ConstTensor(shape: shape, ints: offsets.map { v[$0] })] }
            let v = x.floats
            return [ConstTensor(shape: shape, floats: offsets.map { v[$0] })]
        default:
            throw node.error(.unsupported, "cannot evaluate at load time")
        }
    }

    static func reshapeForSqueeze(_ node: GraphNode, _ shape: [Int], axes: [Int]) throws -> [Int] {
        if node.op == "Unsqueeze" {
            let r = shape.count + axes.count
            let norm = try Set(axes.map { try normAxis($0, rank: r, node: node, attribute: "axes") })
            guard norm.count == axes.count else { throw node.error(.invalid, "repeated axes \(axes)", attribute: "axes") }
            var out: [Int] = []
            var it = shape.makeIterator()
            for i in 0..<r { out.append(norm.contains(i) ? 1 : (it.next() ?? 1)) }
            return out
        }
        let norm = try Set(axes.map { try normAxis($0, rank: shape.count, node: node, attribute: "axes") })
        var out: [Int] = []
        for (i, d) in shape.enumerated() {
            if norm.isEmpty ? d == 1 : norm.contains(i) {
                guard d == 1 else { throw node.error(.shape, "cannot squeeze axis \(i) of size \(d)", attribute: "axes") }
                continue
            }
            out.append(d)
        }
        return out
    }

    static func resolveReshape(_ node: GraphNode, from shape: [Int], to target: [Int], allowZero: Bool) throws -> [Int] {
        let total = try volume(shape, node: node)
        guard target.count <= 16 else { throw node.error(.shape, "target rank \(target.count)") }
        var out = target
        var infer: Int?
        for (i, d) in target.enumerated() {
            if d == 0 && !allowZero {
                guard i < shape.count else { throw node.error(.shape, "target \(target) copies dim \(i) of \(shape)") }
                out[i] = shape[i]
            } else if d == -1 {
                guard infer == nil else { throw node.error(.shape, "target \(target) has two -1 dims") }
                infer = i
            } else if d < 0 {
                throw node.error(.shape, "target \(target) has a negative dim")
            }
        }
        if let infer {
            let known = try volume(out.enumerated().filter { $0.offset != infer }.map(\.element), node: node)
            guard known > 0, total % known == 0 else { throw node.error(.shape, "cannot reshape \(shape) to \(target)") }
            out[infer] = total / known
        }
        guard try volume(out, node: node) == total else { throw node.error(.shape, "cannot reshape \(shape) (\(total) values) to \(target)") }
        return out
    }
}
