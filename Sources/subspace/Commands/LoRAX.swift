import ArgumentParser
import Foundation
import SubspaceAnalysis
import SubspaceCore
import SubspaceStudies

/// `subspace lora-x …`: training-free transfer of a LoRA adapter to another base model (the default
/// subcommand), and `subspace lora-x study` (the experiment).
struct LoRAX: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-x",
        abstract: "LoRA-X: carry a LoRA adapter to another base model through the target's singular subspaces, keeping its rank.",
        subcommands: [LoRAXTransferCommand.self, LoRAXStudyCommand.self, LoRAXGrowCommand.self],
        defaultSubcommand: LoRAXTransferCommand.self)
}

/// `subspace lora-x --source-model DIR --target-model DIR --adapter DIR --output DIR [--subspace-rank K]
/// [--threshold T] [--svd full|randomized]`, under mpirun: module pairs split over the ranks by SVD cost;
/// rank 0 writes the target's PEFT adapter, transfer.json, report.md, report.html and SVG plots.
struct LoRAXTransferCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer",
        abstract: "Transfer a PEFT LoRA adapter from its source base model to a target base model (no training).")

    @Option(name: .customLong("source-model"), help: "The HF model folder the adapter was trained on.") var sourceModel: String
    @Option(name: .customLong("target-model"), help: "The HF model folder to carry the adapter to (gpt2, llama or qwen2; other widths allowed).")
    var targetModel: String
    @Option(help: "The PEFT adapter folder (adapter_config.json, adapter_model.safetensors) trained on the source model.") var adapter: String
    @Option(help: "Output folder: the target's PEFT adapter and the report.") var output: String
    @Option(name: .customLong("subspace-rank"), help: "k, the dimension of the singular subspaces (default: half of each module's smallest dimension).")
    var subspaceRank: Int?
    @Option(help: "Similarity φ below which a module is not transferred, on either side (default: halfway from chance to 1 per module; 0 transfers every mappable module).")
    var threshold: Double?
    @Option(help: "full (LAPACK thin SVD) or randomized (the leading k + p vectors).") var svd: String = SVDMethod.full.rawValue
    @Option(help: "Randomized only: extra random probes p.") var oversampling: Int = 10
    @Option(name: .customLong("power-iterations"), help: "Randomized only: power iterations q.") var powerIterations: Int = 2
    @Option(help: "Randomized only: seed of the random probes.") var seed: UInt64 = 0

    var options: LoRAXOptions {
        LoRAXOptions(subspaceRank: subspaceRank, threshold: threshold, method: SVDMethod(rawValue: svd) ?? .full,
                     oversampling: oversampling, powerIterations: powerIterations, seed: seed)
    }

    func validate() throws {
        guard SVDMethod(rawValue: svd) != nil else {
            throw ValidationError("--svd must be one of \(SVDMethod.allCases.map(\.rawValue).joined(separator: ", ")), got '\(svd)'")
        }
        if let problem = options.problems().first { throw ValidationError(problem) }
    }

    func run() throws {
        RankedJob.run { job in
            ThreadPolicy.decide().apply()   // LAPACK's SVDs want the rank's cores
            let result = try LoRAXTransfer.transferFolders(
                sourceModel: sourceModel, targetModel: targetModel, adapter: adapter, output: output,
                options: options, communicator: try job.watchedWorld()
            ) { event in
                switch event {
                case .planned(let plan, let mappings, let unmapped):
                    job.log("\(mappings.count) target modules over \(plan.rankCount) rank\(plan.rankCount == 1 ? "" : "s") (\(options.method.rawValue) SVD); "
                            + String(format: "planned cost max/mean %.4f", plan.maxOverMean)
                            + (unmapped.isEmpty ? "" : "; \(unmapped.count) source module(s)/roles without a place in the target"))
                case .module(let m):
                    job.log(String(format: "%@  k %d  φ_U %.4f φ_V %.4f (chance %.4f/%.4f)  %@  %.3f s", m.name, m.k, m.phiU, m.phiV,
                                   m.chanceU, m.chanceV, m.transferred ? "transferred" : "skipped", m.seconds), everyRank: true)
                }
            }
            guard let (outcome, files) = result else { return }
            let r = outcome.report
            print("")
            print(LoRAXWriter.kindTable(r).plainText)
            for u in r.unmapped { job.log("not mapped: \(u.module)\(u.role.map { " (\($0))" } ?? ""): \(u.reason)") }
            for path in files.all { job.log("wrote \(path)") }
            let phis = r.modules.map { min($0.phiU, $0.phiV) }
            print(figures([
                "modules": r.modules.count, "transferred": r.transferredCount, "unmapped": r.unmapped.count,
                "ranks": r.worldSize, "seconds": r.wallSeconds,
                "min_phi": phis.min() ?? .nan, "mean_phi": phis.isEmpty ? .nan : phis.reduce(0, +) / Double(phis.count),
            ]))
            fflush(nil)
        }
    }
}

/// `subspace lora-x study --config configs/lora-x.yaml [--set study.key=value …]`, under mpirun: the
/// related pair and the unrelated control, trained, transferred and scored; rank 0 writes the report.
struct LoRAXStudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "The LoRA-X experiment: transfer to a related base (should help) and to an unrelated one (should not).")

    @Option(help: "The study config (configs/lora-x.yaml).") var config: String
    @Option(name: .customLong("set"), help: "Override a study key: study.key=value (repeatable).") var overrides: [String] = []

    func run() throws {
        RankedJob.run { job in
            let c = try LoRAXStudyConfig.load(path: config, overrides: overrides)
            let context = job.studyContext()
            guard let results = try LoRAXStudy.run(config: c, context: context) else { return }
            let command = (["subspace lora-x study --config", config] + overrides.map { "--set '\($0)'" }).joined(separator: " ")
            let files = try LoRAXStudyReport.write(results, to: c.output, command: command)
            print("")
            print(LoRAXStudyReport.similarityTable(results).plainText)
            print(LoRAXStudyReport.armTable(results).plainText)
            print(LoRAXStudyReport.verdictTable(results).plainText)
            for f in files { job.log("wrote \(f)") }
            fflush(nil)
        }
    }
}

/// `subspace lora-x grow --model DIR --width W --output DIR [--noise S] [--seed N]`: the model grown to a
/// larger residual width so that it computes the same function (new units appended; see `WidthGrowth`),
/// the different-width target of the LoRA-X study. One process (no collective).
struct LoRAXGrowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "grow",
        abstract: "Grow an HF model to a larger width, function-preserving (the LoRA-X study's different-width base).")

    @Option(help: "The HF model folder to grow.") var model: String
    @Option(help: "The new residual width (heads, key/value heads and MLP width scale with it; head dimension kept).") var width: Int
    @Option(help: "The HF model folder to write.") var output: String
    @Option(help: "Std of the new units' reader weights.") var noise: Double = 0.02
    @Option(help: "Seed of that noise.") var seed: UInt64 = 1

    func run() throws {
        do {
            let c = try WidthGrowth.grow(folder: model, width: width, noise: Float(noise), seed: seed, output: output)
            print("grew \(model) to width \(c.hiddenSize) (\(c.headCount) heads, MLP \(c.intermediateSize)) → \(output)")
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}
