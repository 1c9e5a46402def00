import Foundation

/// How unlike the labelled good beans the most unusual spot of a crop is (PatchCore-style), as one
/// extra coordinate of the embedding.
///
/// Why: the pooled statistics of `MultiScalePooling` average a small hole, crack or mould spot
/// over the whole bean; a patch-level comparison keeps it. Each position of the grid of the last
/// tap (stage 2: 16×16 on 64-px crops) is described by the channels of every tap around it (an
/// earlier, finer tap average-pooled to the grid first; then each tap 3×3-averaged, padding not
/// counted, and scaled to unit spread). A bank of good patches — a greedy k-centre coreset of the
/// labelled good photos' patches — gives every position its squared distance to the nearest good
/// patch; the crop's novelty is the largest of them. Standardised against the labelled photos and
/// weighed, it is appended to the head's L2-normalised embedding and the whole renormalised, so
/// the store's cosine kNN and the daemon's policy need no change. Measured in MODEL_CARD.md.
public struct PatchNovelty: Sendable, Equatable {
    /// Trunk layer indices whose maps describe a patch, ascending; the last one's grid is the grid.
    public var taps: [Int]
    /// Per tap: side of the average pooling that brings its map to the grid (1: already there).
    public var factors: [Int]
    /// Per tap: multiplier of its channels (1 / the spread of its descriptor block).
    public var scales: [Float]
    /// Per tap: its channel count.
    public var tapChannels: [Int]
    /// Good patches, [bankCount, channels], scaled.
    public var bank: [Float]
    /// The coordinate is (novelty − mean) / deviation · weight.
    public var mean: Float
    public var deviation: Float
    public var weight: Float

    public var channels: Int { tapChannels.reduce(0, +) }
    public var bankCount: Int { bank.count / max(channels, 1) }

    /// Per channel of a descriptor: its tap's scale.
    var channelScales: [Float] { Self.perChannel(scales, tapChannels: tapChannels) }

    static func perChannel(_ scales: [Float], tapChannels: [Int]) -> [Float] {
        zip(tapChannels, scales).flatMap { [Float](repeating: $1, count: $0) }
    }

    // MARK: descriptors

    /// Patch descriptors of a batch from its tap maps ([N, C_t, H_t, W_t] each, in `taps` order):
    /// [N, positions, channels], multiplied by `scales` (all 1: raw). The grid is the last map's.
    static func descriptors(_ maps: [Tensor], factors: [Int], scales: [Float]) -> (data: [Float], positions: Int) {
        guard let last = maps.last else { return ([], 0) }
        let (n, gh, gw) = (last.shape[0], last.shape[2], last.shape[3])
        let positions = gh * gw
        let channels = maps.reduce(0) { $0 + $1.shape[1] }
        var out = [Float](repeating: 0, count: n * positions * channels)
        var offset = 0
        for (t, map) in maps.enumerated() {
            let c = map.shape[1], f = factors[t]
            // Average-pool by f (kernel = stride = f), then the 3×3 mean with the padding excluded.
            var coarse = [Float](repeating: 0, count: n * c * positions)
            let (h, w) = (map.shape[2], map.shape[3])
            let inv = 1 / Float(f * f)
            for s in 0..<n {
                for ch in 0..<c {
                    let src = (s * c + ch) * h * w, dst = (s * c + ch) * positions
                    for y in 0..<gh {
                        for x in 0..<gw {
                            var sum: Float = 0
                            for dy in 0..<f { for dx in 0..<f { sum += map.data[src + (y * f + dy) * w + x * f + dx] } }
                            coarse[dst + y * gw + x] = sum * inv
                        }
                    }
                }
            }
            let scale = scales[t]
            for s in 0..<n {
                for ch in 0..<c {
                    let src = (s * c + ch) * positions
                    for y in 0..<gh {
                        for x in 0..<gw {
                            var sum: Float = 0, count = 0
                            for yy in max(y - 1, 0)...min(y + 1, gh - 1) {
                                for xx in max(x - 1, 0)...min(x + 1, gw - 1) { sum += coarse[src + yy * gw + xx]; count += 1 }
                            }
                            out[(s * positions + y * gw + x) * channels + offset + ch] = sum / Float(count) * scale
                        }
                    }
                }
            }
            offset += c
        }
        return (out, positions)
    }

    /// Per sample: the largest over positions of the squared distance to the nearest bank patch,
    /// computed as the ONNX form does: ‖p‖² − max_k (2 p·b_k − ‖b_k‖²).
    static func novelties(descriptors: [Float], positions: Int, channels: Int, bank: [Float]) -> [Float] {
        let rows = descriptors.count / max(channels, 1), k = bank.count / max(channels, 1)
        guard rows > 0, k > 0 else { return [] }
        var dots = [Float](repeating: 0, count: rows * k)
        descriptors.withUnsafeBufferPointer { d in
            bank.withUnsafeBufferPointer { b in
                dots.withUnsafeMutableBufferPointer { out in
                    guard let dp = d.baseAddress, let bp = b.baseAddress, let op = out.baseAddress else { return }
                    Kernels.sgemm(m: rows, n: k, k: channels, a: dp, lda: channels, b: bp, ldb: channels, transB: true,
                                  c: op, ldc: k, alpha: 2)
                }
            }
        }
        let bankNorms = (0..<k).map { j in (0..<channels).reduce(Float(0)) { $0 + bank[j * channels + $1] * bank[j * channels + $1] } }
        var result = [Float](repeating: -.infinity, count: rows / max(positions, 1))
        for r in 0..<rows {
            var best = -Float.infinity
            for j in 0..<k { best = max(best, dots[r * k + j] - bankNorms[j]) }
            var norm: Float = 0
            for c in 0..<channels { norm += descriptors[r * channels + c] * descriptors[r * channels + c] }
            let sample = r / positions
            result[sample] = max(result[sample], norm - best)
        }
        return result
    }

    /// The embedding coordinate of each sample of a batch, from its tap maps.
    public func coordinates(_ maps: [Tensor]) -> [Float] {
        let (d, positions) = Self.descriptors(maps, factors: factors, scales: scales)
        return Self.novelties(descriptors: d, positions: positions, channels: channels, bank: bank)
            .map { ($0 - mean) / deviation * weight }
    }

    // MARK: fitting

    /// Fits the bank and the standardisation. `maps(range)` gives the tap maps (in `taps` order)
    /// of the labelled photos in `range`; `good[i]` says whether photo i is of a good bean.
    /// The scales make each tap's descriptor block unit spread over all labelled photos; the bank
    /// is a greedy k-centre coreset of at most `bankSize` of the good photos' patches (the first
    /// patch, then each time the patch farthest from those chosen); the mean is the good photos'
    /// novelty, the deviation that of all labelled photos.
    public static func fit(taps: [Int], good: [Bool], bankSize: Int, weight: Float, batch: Int = 64,
                           maps: (Range<Int>) -> [Tensor]) throws -> PatchNovelty {
        guard bankSize >= 1 else { throw TrainingError("patch novelty: the bank needs at least 1 patch, got \(bankSize)") }
        guard weight > 0, weight.isFinite else { throw TrainingError("patch novelty: the weight must be positive, got \(weight)") }
        guard good.contains(true) else {
            throw TrainingError("patch novelty needs labelled good beans: none among the \(good.count) labelled photos (--patch-novelty 0 turns it off)")
        }
        // Raw descriptors of every labelled photo, batch by batch.
        var raw: [Float] = []
        var positions = 0, factors: [Int] = [], tapChannels: [Int] = []
        var start = 0
        while start < good.count {
            let batchMaps = maps(start..<min(start + batch, good.count))
            guard batchMaps.count == taps.count, let last = batchMaps.last else {
                throw TrainingError("patch novelty: \(batchMaps.count) tap maps for \(taps.count) taps")
            }
            if factors.isEmpty {
                for map in batchMaps {
                    let f = map.shape[2] / max(last.shape[2], 1)
                    guard f >= 1, map.shape[2] == f * last.shape[2], map.shape[3] == f * last.shape[3] else {
                        throw TrainingError("patch novelty: a tap map of \(map.shape[2])×\(map.shape[3]) does not pool evenly to the \(last.shape[2])×\(last.shape[3]) grid")
                    }
                    factors.append(f)
                    tapChannels.append(map.shape[1])
                }
            }
            let (d, p) = descriptors(batchMaps, factors: factors, scales: [Float](repeating: 1, count: taps.count))
            raw += d
            positions = p
            start += batch
        }
        let channels = tapChannels.reduce(0, +)
        let rows = raw.count / max(channels, 1)

        // Each tap's block to unit spread (its values pooled over channels, patches and photos).
        var scales: [Float] = []
        var offset = 0
        for c in tapChannels {
            var sum = 0.0, squares = 0.0
            for r in 0..<rows { for ch in offset..<offset + c { let v = Double(raw[r * channels + ch]); sum += v; squares += v * v } }
            let count = Double(rows * c), m = sum / count
            let sd = max(squares / count - m * m, 0).squareRoot()
            scales.append(sd > 1e-12 ? Float(1 / sd) : 0)
            offset += c
        }
        var scaled = raw
        let channelScale = perChannel(scales, tapChannels: tapChannels)
        for r in 0..<rows { for ch in 0..<channels { scaled[r * channels + ch] *= channelScale[ch] } }

        // Greedy k-centre over the good photos' patches.
        var goodRows: [Int] = []
        for (i, isGood) in good.enumerated() where isGood { goodRows += (i * positions)..<((i + 1) * positions) }
        let count = min(bankSize, goodRows.count)
        var nearest = [Float](repeating: .infinity, count: goodRows.count)
        var chosen = 0
        var bank: [Float] = []
        bank.reserveCapacity(count * channels)
        scaled.withUnsafeBufferPointer { p in
            for _ in 0..<count {
                let centre = goodRows[chosen] * channels
                bank += p[centre..<centre + channels]
                var farthest = 0, farthestDistance: Float = -1
                for (i, row) in goodRows.enumerated() {
                    let base = row * channels
                    var d: Float = 0
                    for ch in 0..<channels { let t = p[base + ch] - p[centre + ch]; d += t * t }
                    if d < nearest[i] { nearest[i] = d }
                    if nearest[i] > farthestDistance { farthestDistance = nearest[i]; farthest = i }
                }
                chosen = farthest
            }
        }

        let scores = novelties(descriptors: scaled, positions: positions, channels: channels, bank: bank)
        let goodScores = zip(scores, good).filter(\.1).map { Double($0.0) }
        let mean = goodScores.reduce(0, +) / Double(goodScores.count)
        let allMean = scores.reduce(0.0) { $0 + Double($1) } / Double(max(scores.count, 1))
        let variance = scores.reduce(0.0) { $0 + (Double($1) - allMean) * (Double($1) - allMean) } / Double(max(scores.count, 1))
        let deviation = variance.squareRoot()
        return PatchNovelty(taps: taps, factors: factors, scales: scales, tapChannels: tapChannels, bank: bank,
                            mean: Float(mean), deviation: deviation > 1e-12 ? Float(deviation) : 1, weight: weight)
    }
}

/// The multi-scale encoder with the patch-novelty coordinate: the trunk runs once; its pooled
/// statistics go through the head (linear map, L2 normalisation), its tap maps through
/// `PatchNovelty`; the coordinate is appended and the whole L2-normalised again. Inference only
/// (it is assembled after training, for the export and for checks).
public final class NoveltyEncoder: Layer {
    public let pooling: MultiScalePooling
    /// The head on the pooled statistics, ending in L2Normalize.
    public let head: Sequential
    public let novelty: PatchNovelty

    public init(pooling: MultiScalePooling, head: Sequential, novelty: PatchNovelty) {
        precondition(novelty.taps.allSatisfy { pooling.taps.contains($0) },
                     "NoveltyEncoder: novelty taps \(novelty.taps) must be among the pooled taps \(pooling.taps)")
        self.pooling = pooling; self.head = head; self.novelty = novelty
    }

    public var parameters: [Parameter] { pooling.parameters + head.parameters }
    public var buffers: [Parameter] { pooling.buffers + head.buffers }

    public func forward(_ x: Tensor, training: Bool) -> Tensor {
        precondition(!training, "NoveltyEncoder is inference only")
        let (pooled, maps) = pooling.forwardKeepingMaps(x)
        let embedding = head.forward(pooled, training: false)
        let coordinates = novelty.coordinates(novelty.taps.compactMap { maps[$0] })
        let (n, d) = (embedding.shape[0], embedding.shape[1])
        var joined = [Float](repeating: 0, count: n * (d + 1))
        for s in 0..<n {
            for j in 0..<d { joined[s * (d + 1) + j] = embedding.data[s * d + j] }
            joined[s * (d + 1) + d] = coordinates[s]
        }
        return L2Normalize().forward(Tensor(shape: [n, d + 1], data: joined), training: false)
    }

    public func backward(_ dy: Tensor) -> Tensor { preconditionFailure("NoveltyEncoder is inference only") }
}
