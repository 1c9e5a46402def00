import Foundation

/// What batch-hard mining saw in one batch (for logs and collapse guards).
public struct TripletStatistics: Sendable, Equatable {
    /// Anchors that had at least one positive and one negative in the batch.
    public var anchors: Int
    /// Anchors whose hardest triplet violates the margin (loss > 0).
    public var activeTriplets: Int
    /// Mean distance to the hardest positive / hardest negative over the anchors.
    public var meanPositiveDistance: Float
    public var meanNegativeDistance: Float
}

public enum Loss {
    /// Mean squared error over all values; returns the loss and dLoss/dPrediction.
    public static func mse(_ prediction: Tensor, _ target: Tensor) -> (loss: Float, grad: Tensor) {
        precondition(prediction.shape == target.shape, "Loss.mse: prediction \(prediction.shape) and target \(target.shape) differ")
        let n = Float(max(prediction.count, 1))
        var grad = [Float](repeating: 0, count: prediction.count)
        var sum = 0.0
        for i in 0..<prediction.count {
            let d = prediction.data[i] - target.data[i]
            sum += Double(d * d)
            grad[i] = 2 * d / n
        }
        return (Float(sum / Double(n)), Tensor(shape: prediction.shape, data: grad))
    }

    /// Batch-hard triplet loss (Hermans et al. 2017) on Euclidean distances between rows of
    /// `embeddings` [N, D]: for each anchor with a positive and a negative in the batch,
    /// max(0, margin + d(hardest positive) − d(hardest negative)), averaged over those anchors.
    /// Returns zero loss and gradient when no anchor qualifies.
    public static func tripletBatchHard(_ embeddings: Tensor, labels: [Int], margin: Float)
        -> (loss: Float, grad: Tensor, stats: TripletStatistics) {
        precondition(embeddings.shape.count == 2 && embeddings.shape[0] == labels.count,
                     "Loss.tripletBatchHard: embeddings \(embeddings.shape) for \(labels.count) labels")
        let (n, d) = (embeddings.shape[0], embeddings.shape[1])
        let e = embeddings.data
        // Pairwise distances; the epsilon keeps the gradient finite for identical rows.
        var dist = [Float](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in (i + 1)..<max(n, i + 1) {
                var s: Float = 0
                for k in 0..<d { let t = e[i * d + k] - e[j * d + k]; s += t * t }
                let v = (s + 1e-12).squareRoot()
                dist[i * n + j] = v; dist[j * n + i] = v
            }
        }
        var grad = [Float](repeating: 0, count: n * d)
        var total = 0.0, anchors = 0, active = 0
        var sumPos = 0.0, sumNeg = 0.0
        var picks: [(Int, Int, Int)] = []
        for a in 0..<n {
            var pos = -1, neg = -1
            for j in 0..<n where j != a {
                if labels[j] == labels[a] {
                    if pos < 0 || dist[a * n + j] > dist[a * n + pos] { pos = j }
                } else if neg < 0 || dist[a * n + j] < dist[a * n + neg] {
                    neg = j
                }
            }
            guard pos >= 0, neg >= 0 else { continue }
            anchors += 1
            let dp = dist[a * n + pos], dn = dist[a * n + neg]
            sumPos += Double(dp); sumNeg += Double(dn)
            let l = margin + dp - dn
            if l > 0 {
                active += 1
                total += Double(l)
                picks.append((a, pos, neg))
            }
        }
        if anchors > 0 {
            let scale = 1 / Float(anchors)
            for (a, p, q) in picks {
                let dp = dist[a * n + p], dn = dist[a * n + q]
                for k in 0..<d {
                    let gp = (e[a * d + k] - e[p * d + k]) / dp * scale
                    let gn = (e[a * d + k] - e[q * d + k]) / dn * scale
                    grad[a * d + k] += gp - gn
                    grad[p * d + k] -= gp
                    grad[q * d + k] += gn
                }
            }
        }
        let stats = TripletStatistics(anchors: anchors, activeTriplets: active,
                                      meanPositiveDistance: anchors > 0 ? Float(sumPos / Double(anchors)) : 0,
                                      meanNegativeDistance: anchors > 0 ? Float(sumNeg / Double(anchors)) : 0)
        return (anchors > 0 ? Float(total / Double(anchors)) : 0, Tensor(shape: embeddings.shape, data: grad), stats)
    }
}
