import ArgumentParser
import BeanNet
import CBLAS
import Foundation

/// `beanctl bench train`: training-step throughput of BeanNet's training engine on the ResNet-like
/// encoder, next to two peers measured in the same run: the project's inference runtime on the
/// same network (exported to ONNX) and the sgemm peak at the same thread count.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Images per second of a training step (forward, backward, Adam) of the ResNet-like encoder."
    )

    @Option(help: "Input height and width.") var size = 64
    @Option(help: "Images per step.") var batch = 32
    @Option(help: "Stage widths, comma-separated.") var widths = "16,32,64,128"
    @Option(help: "Residual blocks per stage, comma-separated.") var blocks = "1,1,1,1"
    @Option(help: "Embedding size.") var embedding = 128
    @Option(help: "OpenBLAS threads.") var threads = 2
    @Option(help: "Seconds per measurement.") var seconds = 3.0
    @Flag(help: "Also print the time per top-level layer (forward and backward).") var profile = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let w = try widths.split(separator: ",").map { s -> Int in
            guard let v = Int(s), v > 0 else { throw ValidationError("--widths: '\(s)' is not a positive integer") }
            return v
        }
        let b = try blocks.split(separator: ",").map { s -> Int in
            guard let v = Int(s), v >= 0 else { throw ValidationError("--blocks: '\(s)' is not a non-negative integer") }
            return v
        }
        guard w.count == b.count, !w.isEmpty else { throw ValidationError("--widths and --blocks need the same number of stages") }
        guard size >= 8, batch >= 2, threads >= 1, seconds > 0, embedding > 0 else {
            throw ValidationError("size ≥ 8, batch ≥ 2, threads ≥ 1, seconds > 0 and embedding > 0 are required")
        }
        prepareProcessForTraining(blasThreads: threads)
        let net = resnetLikeEncoder(widths: w, blocks: b, embedding: embedding, seed: 1)
        net.append(L2Normalize())
        var rng = SeededRandom(seed: 2)
        let x = Tensor(shape: [batch, 3, size, size], data: (0..<(batch * 3 * size * size)).map { _ in rng.normal() })
        let labels = (0..<batch).map { $0 % max(2, batch / 4) }
        var adam = Adam(learningRate: 1e-3)

        func step() {
            net.zeroGrad()
            let e = net.forward(x, training: true)
            let (_, g, _) = Loss.tripletBatchHard(e, labels: labels, margin: 0.2)
            _ = net.backward(g)
            adam.step(net.parameters)
        }
        func rate(_ body: () -> Void) -> Double {
            body()   // warm-up
            let start = DispatchTime.now().uptimeNanoseconds
            var n = 0
            repeat { body(); n += 1 } while Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < seconds || n < 3
            return Double(n * batch) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        let trainRate = rate(step)
        let forwardRate = rate { _ = net.forward(x, training: false) }

        let onnx = try ONNXExport.encoder(net, inputShape: [3, size, size], producer: "beanctl bench train")
        let model = try EncoderModel(data: onnx, source: "bench-train.onnx")
        let session = try model.makeSession(maxBatch: batch)
        let runtimeRate = rate { _ = try? session.run(x.data, batch: batch) }
        setBLASThreads(threads)   // the runtime may have changed it
        let peak = sgemmPeak(threads: threads)
        // A training step costs about three forward passes of multiply-adds (forward, dX, dW).
        let macs = Double(model.macsPerSample)
        let trainGflops = trainRate * macs * 3 * 2 / 1e9
        let forwardGflops = forwardRate * macs * 2 / 1e9

        var layerTimes: [(String, Double, Double)] = []
        if profile {
            var h = x
            var inputs: [Tensor] = []
            for l in net.layers {
                let t0 = DispatchTime.now().uptimeNanoseconds
                inputs.append(h)
                h = l.forward(h, training: true)
                layerTimes.append(("\(type(of: l))", Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6, 0))
            }
            var g = Loss.tripletBatchHard(h, labels: labels, margin: 0.2).grad
            for (i, l) in net.layers.enumerated().reversed() {
                let t0 = DispatchTime.now().uptimeNanoseconds
                g = l.backward(g)
                layerTimes[i].2 = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
            }
        }

        if json {
            let obj: [String: Any] = [
                "size": size, "batch": batch, "widths": w, "blocks": b, "embedding": embedding, "threads": threads,
                "parameters": net.parameterCount, "macs_per_image": model.macsPerSample,
                "train_images_per_s": trainRate, "train_gflops": trainGflops,
                "forward_images_per_s": forwardRate, "runtime_images_per_s": runtimeRate,
                "sgemm_peak_gflops": peak, "train_peak_fraction": trainGflops / peak,
                "blas_core": BLASKernels.currentCore,
            ]
            let data = try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "encoder widths %@ blocks %@ embedding %d, %d parameters, %.1f M MAC/image, %d×%d, batch %d, %d BLAS threads (%@ kernels)",
                         widths, blocks, embedding, net.parameterCount, macs / 1e6, size, size, batch, threads, BLASKernels.currentCore))
            print(String(format: "training step (forward+backward+Adam): %.1f images/s, %.1f GFLOP/s (%.0f%% of sgemm peak %.1f)",
                         trainRate, trainGflops, 100 * trainGflops / peak, peak))
            print(String(format: "training forward (inference mode):     %.1f images/s, %.1f GFLOP/s", forwardRate, forwardGflops))
            print(String(format: "inference runtime on the exported ONNX: %.1f images/s (training forward / runtime = %.2f×)",
                         runtimeRate, forwardRate / runtimeRate))
            for (i, (name, f, bw)) in layerTimes.enumerated() {
                print(String(format: "  %2d %-14@ forward %7.1f ms  backward %7.1f ms", i, name, f, bw))
            }
        }
    }

    /// One caller, `threads` OpenBLAS threads, 512³ sgemm, best of 3 × 0.3 s.
    func sgemmPeak(threads: Int) -> Double {
        let n = 512
        let a = [Float](repeating: 0.5, count: n * n), b = [Float](repeating: 0.25, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        var best = 0.0
        for _ in 0..<3 {
            let start = DispatchTime.now().uptimeNanoseconds
            var calls = 0
            repeat {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n), 1, a, Int32(n), b, Int32(n), 0, &c, Int32(n))
                calls += 1
            } while DispatchTime.now().uptimeNanoseconds - start < 300_000_000
            best = max(best, Double(calls) * 2 * Double(n * n * n) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9) / 1e9)
        }
        return best
    }
}
