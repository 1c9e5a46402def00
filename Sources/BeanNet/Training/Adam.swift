import Foundation

/// Adam with decoupled weight decay (AdamW when `weightDecay` > 0). The moment estimates are kept
/// per parameter in the order of the list given to `step`, which must be the same list every call.
public struct Adam: Sendable, Equatable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var epsilon: Float
    public var weightDecay: Float
    /// Updates applied so far (for bias correction).
    public internal(set) var steps: Int = 0
    /// First and second moment estimates, one array per parameter.
    public internal(set) var m: [[Float]] = []
    public internal(set) var v: [[Float]] = []

    public init(learningRate: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
        self.epsilon = epsilon; self.weightDecay = weightDecay
    }

    /// One update from the accumulated gradients (not cleared; call `zeroGrad`).
    public mutating func step(_ params: [Parameter]) {
        if m.isEmpty {
            m = params.map { [Float](repeating: 0, count: $0.count) }
            v = m
        }
        precondition(m.count == params.count && zip(m, params).allSatisfy { $0.count == $1.count },
                     "Adam.step: parameter list changed (\(params.count) parameters, state for \(m.count))")
        steps += 1
        let c1 = 1 - powf(beta1, Float(steps)), c2 = 1 - powf(beta2, Float(steps))
        let lr = learningRate, b1 = beta1, b2 = beta2, eps = epsilon, decay = learningRate * weightDecay
        for (k, p) in params.enumerated() {
            m[k].withUnsafeMutableBufferPointer { mp in
                v[k].withUnsafeMutableBufferPointer { vp in
                    p.grad.withUnsafeBufferPointer { g in
                        p.value.withUnsafeMutableBufferPointer { w in
                            for i in 0..<w.count {
                                mp[i] = b1 * mp[i] + (1 - b1) * g[i]
                                vp[i] = b2 * vp[i] + (1 - b2) * g[i] * g[i]
                                let update = (mp[i] / c1) / ((vp[i] / c2).squareRoot() + eps)
                                w[i] -= lr * update + decay * w[i]
                            }
                        }
                    }
                }
            }
        }
    }

    public func zeroGrad(_ params: [Parameter]) {
        for p in params { p.zeroGrad() }
    }
}

/// Scales all gradients of `params` together so their global L2 norm is at most `maxNorm`;
/// returns the norm before clipping (worth logging: a growing norm warns of divergence).
@discardableResult
public func clipGradientNorm(_ params: [Parameter], maxNorm: Float) -> Float {
    var sum = 0.0
    for p in params {
        p.grad.withUnsafeBufferPointer { g in
            var s: Float = 0
            for v in g { s += v * v }
            sum += Double(s)
        }
    }
    let norm = Float(sum.squareRoot())
    if norm > maxNorm && norm > 0 {
        let scale = maxNorm / norm
        for p in params { p.grad.withUnsafeMutableBufferPointer { g in for i in g.indices { g[i] *= scale } } }
    }
    return norm
}
