import ArgumentParser
import Foundation
import SubspaceAnalysis
import SubspaceCore

/// `subspace delta-svd --base DIR --tuned DIR --rank R --output DIR [--method full|randomized]`, run
/// under mpirun: the SVD of ΔW = W_tuned − W_base for every LoRA-targetable module, split over the
/// ranks by cost; rank 0 writes analysis.json, factors.safetensors, report.md and SVG plots.
struct DeltaSVD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delta-svd",
        abstract: "SVD of the fine-tuning update ΔW of every LoRA-targetable module; run under mpirun to split the modules over ranks.")

    @Option(help: "The base model: an HF model folder, or a Subspace checkpoint (…/checkpoints/step-N) or run folder (its newest checkpoint).")
    var base: String
    @Option(help: "The fine-tuned model, of the same architecture: an HF model folder, or a Subspace checkpoint or run folder (read in pieces from the per-rank files).")
    var tuned: String
    @Option(help: "Rank R of the 'at rank' figures and of the factors.") var rank: Int
    @Option(help: "Output folder.") var output: String
    @Option(help: "full (every singular value, LAPACK sgesdd) or randomized (the leading R + p values).")
    var method: String = SVDMethod.full.rawValue
    @Option(help: "Randomized only: extra random probes p.") var oversampling: Int = 10
    @Option(name: .customLong("power-iterations"), help: "Randomized only: power iterations q.") var powerIterations: Int = 2
    @Option(help: "Randomized only: seed of the random probes.") var seed: UInt64 = 0

    var options: DeltaAnalysisOptions {
        DeltaAnalysisOptions(rank: rank, method: SVDMethod(rawValue: method) ?? .full, oversampling: oversampling,
                             powerIterations: powerIterations, seed: seed)
    }

    func validate() throws {
        guard SVDMethod(rawValue: method) != nil else {
            throw ValidationError("--method must be one of \(SVDMethod.allCases.map(\.rawValue).joined(separator: ", ")), got '\(method)'")
        }
        if let problem = options.problems().first { throw ValidationError(problem) }
    }

    func run() throws {
        RankedJob.run { job in
            // RankedJob leaves BLAS single-threaded for the model kernels; LAPACK's SVD wants the rank's cores.
            let policy = ThreadPolicy.decide()
            policy.apply()
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try DeltaAnalyzer.analyzeFolders(
                base: base, tuned: tuned, output: output, options: options, communicator: try job.watchedWorld()
            ) { event in
                switch event {
                case .planned(let plan, let modules):
                    job.log("\(modules.count) modules over \(plan.rankCount) rank\(plan.rankCount == 1 ? "" : "s") (\(options.method.rawValue) SVD, R = \(rank), \(BLAS.threadCount) BLAS thread\(BLAS.threadCount == 1 ? "" : "s") per rank); "
                            + String(format: "planned cost max/mean %.4f", plan.maxOverMean))
                case .module(let module, let index, _, let load, let svd):
                    job.log(String(format: "%4d %@ %d×%d  load %.3f s  svd %.3f s", index, module.name, module.outFeatures,
                                   module.inFeatures, load, svd), everyRank: true)
                }
            }
            guard let (outcome, files) = result else { return }
            let wall = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            let a = outcome.analysis
            print("")
            print(DeltaAnalysisWriter.kindTable(a).plainText)
            for w in a.warnings { job.log("warning: \(w)") }
            for path in files.all { job.log("wrote \(path)") }
            let perRank = a.plan.perRankSVDSeconds.map { String(format: "%.3f", $0) }.joined(separator: " ")
            job.log(String(format: "time: %.3f s wall in total; SVD %.3f s summed over %d modules (per rank: %@); load %.3f s summed",
                           wall, a.timing.svdSecondsTotal, a.layers.count, perRank, a.timing.loadSecondsTotal))
            print(figures([
                "layers": a.layers.count, "rank": a.rank, "method": a.method.rawValue, "ranks": a.worldSize,
                "seconds": wall, "svd_seconds": a.timing.svdSecondsTotal,
                "max_rank_svd_seconds": a.plan.perRankSVDSeconds.max() ?? 0,
                "max_over_mean_cost": a.plan.maxOverMean,
                "mean_energy_at_rank": a.summary.overall.meanEnergyAtRank ?? .nan,
                "pooled_energy_at_rank": a.summary.overall.pooledEnergyAtRank ?? .nan,
            ]))
            fflush(nil)
        }
    }
}
