import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceDistributed

/// An end-to-end check of a fresh installation under mpirun: every rank runs BLAS and LAPACK and checks
/// the results, the ranks exchange data through every collective kind, and rank 0 writes and re-reads a
/// safetensors file of what the ranks produced. Exits non-zero (the whole job) on any mismatch.
struct Smoke: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check build, MPI, BLAS, LAPACK and safetensors end to end (run under mpirun).")

    @Option(help: "Folder for the results (created).")
    var output: String = "runs/smoke"

    struct Failure: Error, CustomStringConvertible { let description: String }

    func run() throws {
        RankedJob.run { job in
            let world = job.world
            var rng = RandomStream(seed: 2024).split(UInt64(world.rank))

            // BLAS: a product against a naive loop, and a speed figure.
            let n = 96
            let a = Tensor.normal([n, n], using: &rng), b = Tensor.normal([n, n], using: &rng)
            let c = BLAS.matmul(a, b)
            var worst: Float = 0
            for i in 0..<n { for j in 0..<n {
                var s: Float = 0
                for k in 0..<n { s += a[i, k] * b[k, j] }
                worst = max(worst, abs(s - c[i, j]))
            }}
            guard worst < 1e-3 else { throw Failure(description: "gemm disagrees with a naive product by \(worst)") }
            let big = 512
            let x = Tensor.normal([big, big], using: &rng)
            _ = BLAS.matmul(x, x)
            let seconds = Stopwatch.time { _ = BLAS.matmul(x, x) }
            let gflops = 2 * pow(Double(big), 3) / seconds * 1e-9

            // LAPACK: SVD reconstruction.
            let m = Tensor.normal([200, 120], using: &rng)
            let svd = try LAPACK.svd(m)
            let svdError = (m - svd.reconstruct()).norm / m.norm
            guard svdError < 1e-5 else { throw Failure(description: "SVD reconstruction error \(svdError)") }

            // Collectives: an all-reduce with a known answer and an uneven all-gather.
            var values = (0..<1000).map { Float(world.rank + 1) * Float($0) }
            try world.allReduce(&values, op: .sum)
            let ranks = Float(world.size * (world.size + 1) / 2)
            guard values.enumerated().allSatisfy({ $1 == ranks * Float($0) }) else {
                throw Failure(description: "all-reduce result is wrong")
            }
            let mine: [Float] = [Float(gflops), svdError, worst] + [Float](repeating: Float(world.rank), count: world.rank)
            let counts = (0..<world.size).map { 3 + $0 }
            var gathered = [Float](repeating: 0, count: counts.reduce(0, +))
            try mine.withUnsafeBufferPointer { input in
                try gathered.withUnsafeMutableBufferPointer { output in
                    try world.allGather(input, counts: counts, output: output)
                }
            }
            job.log("gemm \(String(format: "%.1f", gflops)) GFLOP/s, SVD error \(svdError), collectives ok", everyRank: true)

            // Rank 0 writes what every rank reported, and reads it back.
            if job.isRoot {
                try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
                var writer = SafetensorsWriter(metadata: ["ranks": String(world.size), "what": "subspace smoke"])
                var offset = 0
                for r in 0..<world.size {
                    writer.add("rank\(r).report", Tensor(shape: [counts[r]], values: Array(gathered[offset..<(offset + counts[r])])))
                    offset += counts[r]
                }
                let path = (output as NSString).appendingPathComponent("smoke.safetensors")
                try writer.write(to: path)
                let back = try SafetensorsFile(path: path)
                guard back.names.count == world.size, try back.tensor("rank0.report").scalars == Array(gathered.prefix(3)) else {
                    throw Failure(description: "\(path) did not read back what was written")
                }
                let rates = (0..<world.size).map { gathered[counts[..<$0].reduce(0, +)] }
                job.log("wrote \(path)")
                print(figures(["ranks": world.size, "gflops_per_rank": Double(rates.min()!), "svd_error": Double(svdError),
                               "allreduce": "ok", "safetensors": "ok"]))
            }
            try world.barrier()
        }
    }
}
