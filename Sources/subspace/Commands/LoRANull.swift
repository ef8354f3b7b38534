import ArgumentParser
import Foundation
import SubspaceModel
import SubspaceTraining
import SubspaceAnalysis
import SubspaceStudies

extension LoRANullVariant: ExpressibleByArgument {}
extension CovarianceEstimator: ExpressibleByArgument {}

/// `subspace lora-null build|verify|study`: LoRA-Null adapters from distributed calibration, their
/// verification, and the knowledge-preservation study.
struct LoRANullCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lora-null",
        abstract: "LoRA-Null: null-space adapters from calibration covariances (build), their verification (verify), and the knowledge-preservation study.",
        subcommands: [LoRANullBuildCommand.self, LoRANullVerifyCommand.self, LoRANullStudyCommand.self])
}

/// Where calibration data come from, shared by build and verify.
struct CalibrationOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Calibration data: a safetensors file with input_ids (int64 [N, T]), a token-shard folder, or text/JSONL (with --tokenizer).", valueName: "file"))
    var calibration: String
    @Option(help: ArgumentHelp("For text/JSONL calibration data: bytes or a tokenizer.json.", valueName: "spec"))
    var tokenizer: String?
    @Option(name: .customLong("sequence-length"), help: "Tokens per calibration sequence for folders and text (default: the model's context, at most 128).")
    var sequenceLength: Int?
    @Option(name: .customLong("max-sequences"), help: "Use at most this many calibration sequences (the first ones).")
    var maxSequences: Int?
    @Option(help: "Sequences per forward pass on one rank.") var batch = 8

    func options(split: TokenShards.Split) -> CalibrationSet.Options {
        CalibrationSet.Options(sequenceLength: sequenceLength, maxSequences: maxSequences, tokenizer: tokenizer, split: split)
    }
}

struct LoRANullBuildCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "build",
        abstract: "Build a LoRA-Null adapter (PEFT folder + null_space.json) from the calibration covariance of every target module's input.",
        discussion: """
            Every rank runs the forward pass on its slice of the calibration sequences and accumulates, per \
            distinct module input, C = Σ x xᵀ in double precision (scaled: each sequence divided by its \
            largest |x|, averaged over sequences — the reference code's; plain: over tokens); the sums are \
            all-reduced and the eigendecompositions spread over ranks (longest-processing-time plan, cost \
            n³). The r smallest eigenvectors U_min (ascending) make the adapter: null — lora_A = U_minᵀ \
            (frozen), lora_B = 0; v1 — T = W·U_min·U_minᵀ split by its rank-r SVD, both trainable, base \
            W − T; v2 — v1 with lora_A frozen. v1/v2 are written as a rank-2r adapter [B, −B₀]·[A; A₀] on \
            the original base (alpha doubled), which reproduces W exactly at step 0. Naming: the seed's B \
            (down-projection) is PEFT lora_A [r, in]; the seed's A (up-projection) is PEFT lora_B [out, r]. \
            Train the folder with `lora.initialisation: lora-null` and `lora.adapter: DIR`.
            """)

    @Option(help: ArgumentHelp("HF model folder (the original base).", valueName: "dir")) var model: String
    @OptionGroup var data: CalibrationOptions
    @Option(help: "Adapter rank r (smaller than every target's input width).") var rank: Int
    @Option(help: "null, v1 or v2.") var variant: LoRANullVariant
    @Option(help: ArgumentHelp("PEFT target_modules, comma-separated (default: every linear projection of the blocks).", valueName: "names"))
    var targets: String?
    @Option(help: "Covariance estimator: scaled (default, the reference code's) or plain.") var covariance: CovarianceEstimator = .scaled
    @Option(help: "lora_alpha (default: r, scale 1).") var alpha: Float?
    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var output: String

    func run() throws {
        RankedJob.run { job in
            var o = LoRANullBuild.Options(model: model, calibration: data.calibration, rank: rank, variant: variant, output: output)
            o.calibrationOptions = data.options(split: .train)
            o.targets = targets.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
            o.covariance = covariance
            o.alpha = alpha
            o.batch = data.batch
            let outcome = try LoRANullBuild.run(o, communicator: try job.watchedWorld()) { job.log($0) }
            let m = outcome.manifest
            let shares = m.modules.map(\.closedFormRatio)
            job.log("lora-null build: \(m.modules.count) modules, variant \(m.variant.rawValue), rank \(m.rank), frozen \(m.frozen.map(\.rawValue)); " +
                    "closed-form ‖BX‖/‖X‖ (√(Σλ_min/Σλ)) mean \(String(format: "%.3e", shares.reduce(0, +) / Double(max(1, shares.count)))), " +
                    "max \(String(format: "%.3e", shares.max() ?? 0)) → \(output)")
        }
    }
}

struct LoRANullVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a (trained) LoRA-Null adapter on held-out data: ‖BX‖/‖X‖, ‖ABX‖/‖X‖, output share, with verdicts; compare with --initial.",
        discussion: """
            Runs the model with the adapter on the data (token-shard folders: the validation split) and \
            measures, per module and averaged, the RMS norms of X, BX, ABX, W_res·X and the output, the \
            seed's ratios with its thresholds and diagnoses, and the Frobenius norms of B (lora_A), A \
            (lora_B) and W_res. With --initial (the folder `lora-null build` wrote) the same figures for the \
            adapter as built, the comparison, and a bit-for-bit check of the variant's frozen factor. \
            Writes verification.json, report.md and report.html.
            """)

    @Option(help: ArgumentHelp("HF model folder (the original base).", valueName: "dir")) var model: String
    @Option(help: ArgumentHelp("Adapter folder (trained, or as built).", valueName: "dir")) var adapter: String
    @OptionGroup var data: CalibrationOptions
    @Option(help: ArgumentHelp("The adapter as built, for the init-vs-trained comparison.", valueName: "dir")) var initial: String?
    @Option(help: ArgumentHelp("Output folder.", valueName: "dir")) var output: String

    func run() throws {
        let arguments = CommandLine.arguments.dropFirst().map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        RankedJob.run { job in
            var o = LoRANullVerify.Options(model: model, adapter: adapter, calibration: data.calibration, output: output)
            o.calibrationOptions = data.options(split: .validation)
            o.initial = initial
            o.batch = data.batch
            let report = try LoRANullVerify.run(o, communicator: try job.watchedWorld(), command: "mpirun -np \(job.world.size) subspace \(arguments)") { job.log($0) }
            for line in report.findings { job.log(line) }
            job.log("→ \(output)/verification.json, report.md, report.html")
        }
    }
}

struct LoRANullStudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "The knowledge-preservation experiment: full FT, LoRA, LoRA-Null null/v1/v2 at one rank and budget, per-method LR sweeps, seeds; task quality vs forgetting.",
        discussion: """
            The config's training sections are the SFT fine-tune every method runs (the study sets the base, \
            the LoRA section and the learning rate per run); its `study:` section names the base (or how to \
            pre-train it), the corpus whose held-out loss measures forgetting (and whose train split \
            calibrates LoRA-Null), the methods, rank, learning-rate grids and seeds. Every run lives in \
            run.output and is skipped when done with the same configuration. Writes results.json, \
            report.md and report.html (trade-off plot) into run.output.
            """)

    @Option(help: ArgumentHelp("Study config (configs/lora-null.yaml).", valueName: "file")) var config: String
    @Option(name: .customLong("set"), help: "Override a key, e.g. --set training.steps=100 or --set 'study.seeds=[1, 2, 3]' (repeatable).")
    var overrides: [String] = []

    func run() throws {
        let arguments = CommandLine.arguments.dropFirst().map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        RankedJob.run { job in
            let study = try LoRANullStudyConfig.load(path: config, overrides: overrides)
            let results = try LoRANullStudy.run(study, context: job.studyContext(), command: "mpirun -np \(job.world.size) subspace \(arguments)")
            for line in results.findings { job.log(line) }
            job.log("→ \(study.train.run.output)/results.json, report.md, report.html")
        }
    }
}
