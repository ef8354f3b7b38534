import ArgumentParser
import CBLAS
import SubspaceCore

/// GFLOP/s of the BLAS façade's gemm next to a raw `cblas_sgemm` loop on the same buffers in the same
/// run, so the façade's overhead is measured, not assumed.
struct BenchGemm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gemm", abstract: "GFLOP/s of gemm against a raw cblas_sgemm loop, square sizes.")

    @Option(help: "Square sizes, comma-separated.")
    var sizes: String = "256,512,1024,2048"
    @Option(help: "Minimum seconds of timed work per size and variant.")
    var seconds: Double = 0.5
    @Option(help: "BLAS threads (default: from the cores this process may use).")
    var threads: Int?

    func validate() throws {
        guard let parsed = parsedSizes, !parsed.isEmpty, parsed.allSatisfy({ $0 > 0 && $0 <= 16384 }) else {
            throw ValidationError("--sizes must be positive integers up to 16384, comma-separated; got '\(sizes)'")
        }
        guard seconds.isFinite, seconds > 0, seconds <= 600 else {
            throw ValidationError("--seconds must be a number in (0, 600], got \(seconds)")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    var parsedSizes: [Int]? {
        let parts = sizes.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return parts.contains(nil) ? nil : parts.compactMap { $0 }
    }

    func run() throws {
        let policy = ThreadPolicy.decide()
        policy.apply()
        if let threads { BLAS.threadCount = threads }
        print("# \(policy); using \(BLAS.threadCount); OpenBLAS \(BLAS.configuration)")
        var last = ""
        var worstRatio = Double.infinity
        for n in parsedSizes! {
            var rng = RandomStream(seed: UInt64(n))
            let a = Tensor.normal([n, n], using: &rng)
            let b = Tensor.normal([n, n], using: &rng)
            var c = Tensor(zeros: [n, n])
            let flops = 2.0 * Double(n) * Double(n) * Double(n)
            let (facade, raw) = a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        let facade = { BLAS.gemm(.none, .none, m: n, n: n, k: n, a: pa.baseAddress!, lda: n,
                                                 b: pb.baseAddress!, ldb: n, c: pc.baseAddress!, ldc: n) }
                        let raw = { cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n),
                                                1, pa.baseAddress!, Int32(n), pb.baseAddress!, Int32(n), 0,
                                                pc.baseAddress!, Int32(n)) }
                        return interleavedRates(facade, raw, flops: flops)
                    }
                }
            }
            let ratio = facade / raw
            worstRatio = min(worstRatio, ratio)
            print("size=\(n) gflops=\(String(format: "%.1f", facade)) raw_gflops=\(String(format: "%.1f", raw)) ratio=\(String(format: "%.3f", ratio))")
            last = figures(["size": n, "threads": BLAS.threadCount, "gflops": facade, "raw_gflops": raw, "ratio": ratio])
        }
        print(last + " " + figures(["min_ratio": worstRatio]))
    }

    /// GFLOP/s of two variants as medians of alternating timings (so machine noise hits both alike),
    /// after a warm-up of each; at least `seconds` of work per variant and 3 samples.
    /// A sample repeats a variant enough times to last about a millisecond, so tiny sizes are not
    /// timed call by call (a 1×1 gemm took 35 s to fill 0.05 s with samples), and sampling stops after
    /// 1000 samples whatever `seconds` asks.
    func interleavedRates(_ first: () -> Void, _ second: () -> Void, flops: Double) -> (Double, Double) {
        let once = max(Stopwatch.time(first), Stopwatch.time(second), 1e-9)
        let repeats = max(1, min(1_000_000, Int(1e-3 / once)))
        var a: [Double] = [], b: [Double] = []
        var spent = 0.0
        while (spent < seconds || a.count < 3) && a.count < 1000 {
            a.append(Stopwatch.time { for _ in 0..<repeats { first() } })
            b.append(Stopwatch.time { for _ in 0..<repeats { second() } })
            spent += a[a.count - 1]
        }
        let r = Double(repeats)
        return (flops * r / Stopwatch.median(a) * 1e-9, flops * r / Stopwatch.median(b) * 1e-9)
    }
}

import Foundation
