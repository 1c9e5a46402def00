import Foundation
@testable import BeanStore

/// A fresh directory under /tmp, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init(_ tag: String = "beanstore") {
        let template = NSTemporaryDirectory() + "/\(tag)-XXXXXX"
        var bytes = Array(template.utf8CString)
        let made = bytes.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: bytes)
    }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// Deterministic pseudo-random numbers for test data (no dependence on the system generator).
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x1234_5678 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / 9_007_199_254_740_992 }
    mutating func gaussian() -> Float {
        let u1 = uniform() + 1e-300, u2 = uniform()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
    mutating func vectors(_ n: Int, _ dim: Int) -> [Float] { (0..<(n * dim)).map { _ in gaussian() } }
}

/// Float64 brute force: the reference every search result must equal.
func referenceSearch(vectors: [Float], dim: Int, queries: [Float], k: Int, metric: Metric) -> [[Int64]] {
    let n = vectors.count / dim
    let nq = queries.count / dim
    return (0..<nq).map { q in
        var scored: [(Double, Int)] = (0..<n).map { r in
            var dot = 0.0, qq = 0.0, xx = 0.0, l2 = 0.0
            for i in 0..<dim {
                let a = Double(queries[q * dim + i]), b = Double(vectors[r * dim + i])
                dot += a * b; qq += a * a; xx += b * b; l2 += (a - b) * (a - b)
            }
            let d = metric == .l2 ? l2 : (qq > 0 && xx > 0 ? 1 - dot / (qq.squareRoot() * xx.squareRoot()) : 1)
            return (d, r)
        }
        scored.sort { $0.0 < $1.0 || ($0.0 == $1.0 && $0.1 < $1.1) }
        return scored.prefix(k).map { Int64($0.1) }
    }
}

func makeDraft(dim: Int, count: Int, seed: UInt64, metric: Metric = .cosine,
               fingerprint: String = "enc-v1", labels: [String] = ["Normal", "Black"]) throws -> GenerationDraft {
    var rng = TestRandom(seed: seed)
    var draft = GenerationDraft(dimension: dim, metric: metric, fingerprint: Array(fingerprint.utf8))
    try draft.append(vectors: rng.vectors(count, dim), labels: (0..<count).map { labels[$0 % labels.count] },
                     author: "tester", sourceIDs: (0..<UInt64(count)).map { 1000 + $0 }, addedNs: 1_700_000_000_000_000_000)
    return draft
}

func readBytes(_ path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

func writeBytes(_ bytes: [UInt8], _ path: String) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}
