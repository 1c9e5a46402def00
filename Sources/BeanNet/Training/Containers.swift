import Foundation

/// Layers applied in order; backward runs them in reverse.
public final class Sequential: Layer {
    public private(set) var layers: [Layer]

    public init(_ layers: [Layer]) { self.layers = layers }

    public func append(_ layer: Layer) { layers.append(layer) }

    public var parameters: [Parameter] { layers.flatMap { $0.parameters } }
    public var buffers: [Parameter] { layers.flatMap { $0.buffers } }

    public func namedState(prefix: String) -> [(String, Parameter)] {
        layers.enumerated().flatMap { i, l in l.namedState(prefix: "\(prefix)\(i).") }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var h = x
        for l in layers { h = l.forward(h, training: training) }
        return h
    }

    public func backward(_ dy: Tensor) -> Tensor {
        var g = dy
        for l in layers.reversed() { g = l.backward(g) }
        return g
    }
}

/// ResNet basic block: conv3×3(stride)–BN–ReLU–conv3×3–BN, plus the input (or its 1×1 strided
/// projection with BN when the shape changes), then ReLU.
public final class ResidualBlock: Layer {
    public let conv1: Conv2d, bn1: BatchNorm2d, relu1 = ReLU()
    public let conv2: Conv2d, bn2: BatchNorm2d
    /// 1×1 convolution + BN on the shortcut when stride ≠ 1 or channels change; nil for identity.
    public let projection: (conv: Conv2d, bn: BatchNorm2d)?
    private let relu2 = ReLU()

    public init(_ inChannels: Int, _ outChannels: Int, stride: Int = 1, rng: inout SeededRandom) {
        conv1 = Conv2d(inChannels, outChannels, kernel: 3, stride: stride, padding: 1, bias: false, rng: &rng)
        bn1 = BatchNorm2d(outChannels)
        conv2 = Conv2d(outChannels, outChannels, kernel: 3, stride: 1, padding: 1, bias: false, rng: &rng)
        bn2 = BatchNorm2d(outChannels)
        if stride != 1 || inChannels != outChannels {
            projection = (Conv2d(inChannels, outChannels, kernel: 1, stride: stride, padding: 0, bias: false, rng: &rng),
                          BatchNorm2d(outChannels))
        } else {
            projection = nil
        }
    }

    var children: [(String, Layer)] {
        var c: [(String, Layer)] = [("conv1", conv1), ("bn1", bn1), ("conv2", conv2), ("bn2", bn2)]
        if let projection { c += [("proj_conv", projection.conv), ("proj_bn", projection.bn)] }
        return c
    }

    public var parameters: [Parameter] { children.flatMap { $0.1.parameters } }
    public var buffers: [Parameter] { children.flatMap { $0.1.buffers } }
    public func namedState(prefix: String) -> [(String, Parameter)] {
        children.flatMap { name, l in l.namedState(prefix: "\(prefix)\(name).") }
    }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        var h = conv1.forward(x, training: training)
        h = bn1.forward(h, training: training)
        h = relu1.forward(h, training: training)
        h = conv2.forward(h, training: training)
        h = bn2.forward(h, training: training)
        var shortcut = x
        if let projection {
            shortcut = projection.bn.forward(projection.conv.forward(x, training: training), training: training)
        }
        precondition(shortcut.shape == h.shape, "ResidualBlock: shortcut \(shortcut.shape) and main path \(h.shape) disagree")
        h.data.withUnsafeMutableBufferPointer { a in
            shortcut.data.withUnsafeBufferPointer { b in for i in a.indices { a[i] += b[i] } }
        }
        return relu2.forward(h, training: training)
    }

    public func backward(_ dy: Tensor) -> Tensor {
        let g = relu2.backward(dy)
        var dMain = bn2.backward(g)
        dMain = conv2.backward(dMain)
        dMain = relu1.backward(dMain)
        dMain = bn1.backward(dMain)
        var dx = conv1.backward(dMain)
        let dShort = projection.map { $0.conv.backward($0.bn.backward(g)) } ?? g
        dx.data.withUnsafeMutableBufferPointer { a in
            dShort.data.withUnsafeBufferPointer { b in for i in a.indices { a[i] += b[i] } }
        }
        return dx
    }
}

/// A ResNet-18-like encoder scaled to small crops: a 3×3 stem (stride `stemStride`) with BN and
/// ReLU, then one stage per entry of `widths` with `blocks[i]` basic blocks (the first stage keeps
/// the resolution, each later one halves it), global average pooling, flatten and a linear
/// projection to `embedding` values. Output [N, embedding], not normalised.
public func resnetLikeEncoder(inChannels: Int = 3, widths: [Int], blocks: [Int], embedding: Int,
                              stemStride: Int = 2, seed: UInt64) -> Sequential {
    precondition(!widths.isEmpty && widths.count == blocks.count, "resnetLikeEncoder: widths \(widths) and blocks \(blocks) must be non-empty and of equal length")
    var rng = SeededRandom(seed: seed)
    var layers: [Layer] = [
        Conv2d(inChannels, widths[0], kernel: 3, stride: stemStride, padding: 1, bias: false, rng: &rng),
        BatchNorm2d(widths[0]),
        ReLU(),
    ]
    var channels = widths[0]
    for (stage, width) in widths.enumerated() {
        for b in 0..<blocks[stage] {
            let stride = (stage > 0 && b == 0) ? 2 : 1
            layers.append(ResidualBlock(channels, width, stride: stride, rng: &rng))
            channels = width
        }
    }
    layers += [GlobalAvgPool(), Flatten(), Linear(channels, embedding, rng: &rng)] as [Layer]
    return Sequential(layers)
}

/// Every batch-normalisation layer inside `layer` (through Sequential and ResidualBlock), e.g. to
/// set `freezeStatistics` on a whole backbone.
public func batchNormLayers(in layer: Layer) -> [BatchNorm2d] {
    switch layer {
    case let bn as BatchNorm2d: return [bn]
    case let s as Sequential: return s.layers.flatMap { batchNormLayers(in: $0) }
    case let r as ResidualBlock: return r.children.flatMap { batchNormLayers(in: $0.1) }
    case let m as MultiScalePooling: return batchNormLayers(in: m.trunk)
    default: return []
    }
}
