import BeanCore
import Foundation
import Testing
@testable import BeanNet

@Suite struct PoolTests {
    func crop(_ id: UInt64, width: Int, height: Int, seed: UInt64) -> BeanCrop {
        var rng = TestRandom(seed: seed)
        return BeanCrop(camera: "cam0", frameSequence: id, captured: MonotonicInstant(nanoseconds: id), beanID: id,
                        width: width, height: height, pixels: (0..<(width * height * 3)).map { _ in UInt8(rng.below(256)) })
    }

    @Test func preprocessingNormalisesPerChannel() {
        let p = Preprocessing()
        let c = BeanCrop(camera: "c", frameSequence: 0, captured: MonotonicInstant(nanoseconds: 0), beanID: 1, width: 5, height: 3,
                         pixels: Array(repeating: [200, 100, 50], count: 15).flatMap { $0 })
        var out = [Float](repeating: .nan, count: 3 * 4 * 4)
        out.withUnsafeMutableBufferPointer { p.write(c, width: 4, height: 4, into: $0.baseAddress!) }
        // A constant crop stays constant through any resize; each plane is (v/255 − mean)/std.
        for (ch, v) in [(0, 200.0), (1, 100.0), (2, 50.0)] as [(Int, Float)] {
            let want = (v / 255 - Preprocessing.imagenetMean[ch]) / Preprocessing.imagenetStd[ch]
            for i in 0..<16 { #expect(abs(out[ch * 16 + i] - want) < 1e-5) }
        }
    }

    @Test func preprocessingResizesBilinearly() {
        // 2×1 crop, red 0 and 255: upsampled to 4×1 with half-pixel centres → 0, 63.75, 191.25, 255.
        let p = Preprocessing(mean: [0, 0, 0], std: [1, 1, 1])
        let c = BeanCrop(camera: "c", frameSequence: 0, captured: MonotonicInstant(nanoseconds: 0), beanID: 1, width: 2, height: 1,
                         pixels: [0, 0, 0, 255, 0, 0])
        var out = [Float](repeating: 0, count: 3 * 4)
        out.withUnsafeMutableBufferPointer { p.write(c, width: 4, height: 1, into: $0.baseAddress!) }
        let want: [Float] = [0, 0.25, 0.75, 1]
        for i in 0..<4 { #expect(abs(out[i] - want[i]) < 1e-6) }
    }

    @Test func badCropsAndConfigAreRefused() throws {
        let model = try EncoderModel(data: SmallCNN().data, source: "s")
        let pool = try EncoderPool(model: model, configuration: EncoderPoolConfiguration(workers: 1, maxBatch: 2))
        defer { pool.shutdown() }
        var bad = crop(1, width: 4, height: 4, seed: 1)
        bad.pixels.removeLast()
        #expect(throws: ModelError.self) { _ = try pool.embedSync([bad]) }
        #expect(throws: ModelError.self) {
            _ = try EncoderPool(model: model, configuration: EncoderPoolConfiguration(workers: 0))
        }
        #expect(throws: ModelError.self) {
            _ = try EncoderPool(model: model, configuration: EncoderPoolConfiguration(preprocessing: Preprocessing(mean: [0], std: [1])))
        }
    }

    @Test func poolMatchesDirectSessionAndRespectsMaxBatch() throws {
        let model = try EncoderModel(data: SmallCNN().data, source: "s")
        let config = EncoderPoolConfiguration(workers: 2, maxBatch: 4, maxWait: 0.005)
        let pool = try EncoderPool(model: model, configuration: config)
        defer { pool.shutdown() }
        let crops = (0..<10).map { crop(UInt64($0), width: 11 + $0, height: 9, seed: UInt64($0)) }
        let vectors = try pool.embedSync(crops)
        #expect(vectors.count == 10)

        let session = try model.makeSession(maxBatch: 1)
        var x = [Float](repeating: 0, count: 3 * 8 * 8)
        for (i, c) in crops.enumerated() {
            x.withUnsafeMutableBufferPointer { config.preprocessing.write(c, width: 8, height: 8, into: $0.baseAddress!) }
            let want = try session.run(x, batch: 1)
            #expect(vectors[i].count == 5)
            #expect(zip(vectors[i], want).allSatisfy { abs($0 - $1) < 1e-5 })
        }
        let stats = pool.statistics
        #expect(stats.crops == 10)
        #expect(stats.largestBatch <= 4)
        #expect(stats.batches >= 3)
    }

    @Test func loneCropIsReleasedByMaxWait() async throws {
        let model = try EncoderModel(data: SmallCNN().data, source: "s")
        let pool = try EncoderPool(model: model, configuration: EncoderPoolConfiguration(workers: 1, maxBatch: 64, maxWait: 0.002))
        defer { pool.shutdown() }
        let v = try await pool.embed([crop(7, width: 8, height: 8, seed: 7)])
        #expect(v.count == 1 && v[0].count == 5)
        #expect(pool.statistics.largestBatch == 1)
    }

    @Test func concurrentCallersEachGetTheirOwnVectors() throws {
        let model = try EncoderModel(data: SmallCNN().data, source: "s")
        let pool = try EncoderPool(model: model, configuration: EncoderPoolConfiguration(workers: 2, maxBatch: 8, maxWait: 0.001))
        defer { pool.shutdown() }
        let crops = (0..<24).map { crop(UInt64($0), width: 8, height: 8, seed: UInt64(100 + $0)) }
        let reference = try pool.embedSync(crops)
        let results = UnsafeMutablePointer<[[Float]]>.allocate(capacity: 24)
        results.initialize(repeating: [], count: 24)
        defer { results.deinitialize(count: 24); results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 24) { i in
            results[i] = (try? pool.embedSync([crops[i]])) ?? []
        }
        for i in 0..<24 { #expect(results[i] == [reference[i]]) }
    }

    @Test func shutdownRefusesNewCropsAndFinishesQueuedOnes() throws {
        let model = try EncoderModel(data: SmallCNN().data, source: "s")
        let pool = try EncoderPool(model: model, configuration: EncoderPoolConfiguration(workers: 1, maxBatch: 4, maxWait: 0.05))
        let done = DispatchSemaphore(value: 0)
        let box = Box()
        pool.embed((0..<6).map { crop(UInt64($0), width: 8, height: 8, seed: UInt64($0)) }) { r in box.count = (try? r.get().count) ?? -1; done.signal() }
        pool.shutdown()
        done.wait()
        #expect(box.count == 6)
        #expect(throws: ModelError.self) { _ = try pool.embedSync([crop(9, width: 8, height: 8, seed: 9)]) }
    }

    final class Box: @unchecked Sendable { var count = 0 }

    @Test func npyRoundTripAndGarbage() throws {
        let a = NpyArray(shape: [2, 3], values: [1, 2, 3, 4, 5, -6.5])
        #expect(try NpyArray.parse(a.encoded(), source: "mem") == a)
        #expect(throws: ModelError.self) { _ = try NpyArray.parse(Data("not numpy".utf8), source: "junk.npy") }
        var truncated = a.encoded()
        truncated.removeLast(4)
        #expect(throws: ModelError.self) { _ = try NpyArray.parse(truncated, source: "short.npy") }
    }
}
