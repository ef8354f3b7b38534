import ArgumentParser
import Foundation
import SubspaceCore

/// Seconds of a full thin SVD (`sgesdd`) against a randomized truncated SVD of the same matrix, with the
/// accuracy the randomized one reaches: the worst relative error of its top-r singular values and its
/// rank-r reconstruction error over the optimal (Eckart–Young) one.
struct BenchSVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "svd", abstract: "Full SVD against randomized truncated SVD: seconds and accuracy.")

    @Option(help: "Rows.") var m: Int = 1024
    @Option(help: "Columns.") var n: Int = 1024
    @Option(help: "Components kept by the randomized SVD.") var rank: Int = 32
    @Option(help: "Extra random probes.") var oversampling: Int = 10
    @Option(name: .customLong("power-iterations"), help: "Power iterations.") var powerIterations: Int = 2
    @Option(help: "Singular values decay as decay^i (a fine-tuning ΔW is typically steep).") var decay: Double = 0.97
    @Option(help: "Timed repetitions of each (median reported).") var repeats: Int = 3
    @Option(help: "BLAS threads (default: from the cores this process may use).") var threads: Int?

    func validate() throws {
        guard m >= 1, n >= 1, m * n <= 64 << 20 else { throw ValidationError("--m and --n must be positive with m·n ≤ 64M") }
        guard rank >= 1, rank <= min(m, n) else { throw ValidationError("--rank must be in 1...\(min(m, n))") }
        guard oversampling >= 0, powerIterations >= 0, repeats >= 1 else {
            throw ValidationError("--oversampling and --power-iterations must be ≥ 0, --repeats ≥ 1")
        }
        guard decay > 0, decay <= 1 else { throw ValidationError("--decay must be in (0, 1]") }
    }

    func run() throws {
        let policy = ThreadPolicy.decide()
        policy.apply()
        if let threads { BLAS.threadCount = threads }
        print("# \(policy); using \(BLAS.threadCount)")
        let k = min(m, n)
        let spectrum = (0..<k).map { Float(pow(decay, Double($0))) }
        var rng = RandomStream(seed: 1)
        let a = try prescribed(spectrum, &rng)

        var full: SVD!
        var fullTimes: [Double] = [], randTimes: [Double] = []
        var randomized: SVD!
        for i in 0..<repeats {
            fullTimes.append(try timed { full = try LAPACK.svd(a) })
            var stream = rng.split(UInt64(i))
            randTimes.append(try timed {
                randomized = try LAPACK.randomizedSVD(a, rank: rank, oversampling: oversampling,
                                                      powerIterations: powerIterations, using: &stream)
            })
        }
        let svError = (0..<rank).map { abs(randomized.s[$0] - full.s[$0]) / full.s[$0] }.max()!
        let optimal = (a - full.reconstruct(rank: rank)).norm
        let achieved = (a - randomized.reconstruct()).norm
        let tFull = Stopwatch.median(fullTimes), tRand = Stopwatch.median(randTimes)
        print("full: \(String(format: "%.3f", tFull)) s   randomized (rank \(rank), p=\(oversampling), q=\(powerIterations)): \(String(format: "%.3f", tRand)) s")
        print(figures(["m": m, "n": n, "rank": rank, "threads": BLAS.threadCount, "full_s": tFull, "randomized_s": tRand,
                       "speedup": tFull / tRand, "max_rel_sv_error": Double(svError),
                       "error_ratio": Double(achieved / optimal)]))
    }

    func timed(_ body: () throws -> Void) throws -> Double { try Stopwatch.time(body) }

    /// U · diag(s) · Vᵀ with random orthonormal U [m, k], V [n, k].
    func prescribed(_ s: [Float], _ rng: inout RandomStream) throws -> Tensor {
        var u = try LAPACK.qr(Tensor.normal([m, s.count], using: &rng)).q
        let v = try LAPACK.qr(Tensor.normal([n, s.count], using: &rng)).q
        let k = s.count
        u.withUnsafeMutableBufferPointer { p in for i in 0..<m { for j in 0..<k { p[i * k + j] *= s[j] } } }
        return BLAS.matmul(u, v, transB: .transposed)
    }
}
