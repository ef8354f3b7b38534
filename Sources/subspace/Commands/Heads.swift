import ArgumentParser
import Foundation
import SubspaceAnalysis
import SubspaceStudies

/// `subspace heads importance|study`: attention heads under fine-tuning (head gates, importance,
/// plasticity, per-head updates; full fine-tuning against LoRA).
struct Heads: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Attention heads under fine-tuning: per-head importance, plasticity and updates; FFT vs LoRA.",
        subcommands: [HeadsImportance.self, HeadsStudyCommand.self])
}

/// `subspace heads importance --model DIR [--adapter DIR] --input FILE --output FILE.json`, under mpirun.
struct HeadsImportance: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "importance",
        abstract: "Per-head ablation, Taylor and Fisher importance of a model on a batch of sequences; run under mpirun to split the passes over ranks.",
        discussion: """
            Writes {"layers", "heads", "loss", "ablation", "taylor", "fisher", "gradient", \
            "taylor_layer_normalized", "sequences"}; the L×H arrays are indexed [layer][head]. ablation: loss \
            with the head's gate at 0 minus the loss with all gates 1; taylor: mean over sequences of \
            |∂L_seq/∂ξ|; fisher: mean of (∂L_seq/∂ξ)²; L_seq is a sequence's mean token loss.
            """)

    @Option(help: "HF model folder (config.json + safetensors).") var model: String
    @Option(help: "PEFT adapter folder, applied on top of the model.") var adapter: String?
    @Option(help: "Safetensors file with input_ids (int64 or int32, [N, T]); labels are the ids (HF convention).") var input: String
    @Option(help: "JSON file to write.") var output: String
    @Option(name: .customLong("micro-batch"), help: "Sequences per pass.") var microBatch: Int = 8

    func validate() throws {
        guard microBatch >= 1 else { throw ValidationError("--micro-batch must be ≥ 1, got \(microBatch)") }
    }

    func run() throws {
        RankedJob.run { job in
            let scores = try HeadImportanceFile.run(model: model, adapter: adapter, input: input, output: output,
                                                    microBatch: microBatch, communicator: try job.watchedWorld()) { event in
                switch event {
                case .gradientsDone(let n, let s): job.log(String(format: "gate gradients of %d sequences: %.2f s", n, s))
                case .ablationDone(let n, let s): job.log(String(format: "%d ablation passes: %.2f s", n, s))
                }
            }
            job.log("loss=\(scores.loss) layers=\(scores.layers) heads=\(scores.heads) sequences=\(scores.sequences) output=\(output)")
        }
    }
}

/// `subspace heads study --config configs/heads.yaml [--set key=value …]`, under mpirun.
struct HeadsStudyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "study",
        abstract: "The heads study: FFT and LoRA from one base, per-head importance before/after, plasticity, updates, statistics and a report.",
        discussion: """
            Trains <output>/base (unless base.model names an HF folder), then each method's learning-rate \
            sweep (fft/lr-<rate>/seed-<S>, lora/…: the grid on the first seed, extended past an edge, the \
            best rate over every seed; each run skipped when done with the same configuration), measures \
            every head of the chosen rate's runs, and writes heads.csv, heads.jsonl, results.json, stats.json, \
            report.md, report.html and finding.json into <output>.
            """)

    @Option(help: ArgumentHelp("Study config (configs/heads.yaml).", valueName: "file")) var config: String
    @Option(name: .customLong("set"), help: "Override a study key, e.g. --set 'seeds=[1, 2]' or --set output=runs/h (repeatable).")
    var overrides: [String] = []

    func run() throws {
        let arguments = CommandLine.arguments.dropFirst().map { $0.contains(" ") ? "'\($0)'" : $0 }.joined(separator: " ")
        RankedJob.run { job in
            let config = try HeadsStudyConfig.load(path: self.config, overrides: overrides)
            let command = "mpirun -np \(job.world.size) subspace \(arguments)"
            let results = try HeadsStudy(config: config, context: job.studyContext(), command: command).run()
            for a in results.statistics?.aggregates ?? [] where a.what == "spearman" {
                job.log("\(a.method) ρ(\(a.x), \(a.y)) = \(a.value.formatted(3)): \(a.verdict)")
            }
        }
    }
}
