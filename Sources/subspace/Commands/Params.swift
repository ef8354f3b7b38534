import ArgumentParser
import Foundation
import SubspaceModel
import SubspaceTraining
import SubspaceStudies

extension QKFreezeMode: ExpressibleByArgument {}

/// `subspace params --config FILE [--set …] [--mode M] [--check-step] | --model DIR [--adapter DIR]`:
/// every tensor with its shape, count and whether it trains, with totals; `--check-step` takes one real
/// training step and fails (exit 1, naming the tensors) unless every frozen tensor is bit-identical
/// afterwards and every trainable one changed.
struct Params: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every tensor (shape, count, trainable or frozen) with totals; --check-step proves the frozen ones stay frozen.",
        discussion: """
            With --config the model is built exactly as `subspace train` builds it (new or HF, \
            training.freeze, LoRA) and then as the Q/K freeze study's --mode prepares it; a study config's \
            `study:` section is accepted (its qk_init and gain are used). The config's data must exist, as \
            for training. With --model the HF folder is loaded as is (with --adapter, a PEFT adapter on a \
            frozen base; --mode ortho-frozen marks W_q and W_k frozen).

            --check-step runs one real training step (one in-process rank, the config's batch and ZeRO \
            stage, peak learning rate, a temporary run folder) and compares every tensor bit for bit with \
            its value before. The frozen set it expects comes from the config and the mode, not from the \
            model, so a freeze that is not wired through is caught. Exit status 1 names each tensor that \
            did not behave as intended.
            """)

    @Option(help: ArgumentHelp("YAML training or study config.", valueName: "file")) var config: String?
    @Option(name: .customLong("set"), help: "Override a config key, e.g. --set model.layers=6 (repeatable).")
    var overrides: [String] = []
    @Option(help: "Q/K freeze mode: standard, ortho or ortho-frozen (default: the model as configured).")
    var mode: QKFreezeMode?
    @Option(help: ArgumentHelp("An HF model folder, instead of --config.", valueName: "dir")) var model: String?
    @Option(help: ArgumentHelp("A PEFT adapter folder on --model.", valueName: "dir")) var adapter: String?
    @Flag(help: "Run one training step and verify frozen tensors are bit-identical and trainable ones changed.")
    var checkStep = false
    @Flag(help: "Show the HF checkpoint tensor each row is stored in.") var hfNames = false
    /// For testing the check: make these tensors trainable after the mode froze them, as a broken
    /// freeze would; the check must then fail naming them.
    @Option(name: .customLong("simulate-unfrozen"), help: .hidden) var simulateUnfrozen: [String] = []

    func validate() throws {
        guard (config == nil) != (model == nil) else { throw ValidationError("give exactly one of --config FILE or --model DIR") }
        if adapter != nil && model == nil { throw ValidationError("--adapter goes with --model") }
        if config == nil {
            if checkStep { throw ValidationError("--check-step needs --config (a training step needs data and an optimizer)") }
            if !overrides.isEmpty { throw ValidationError("--set goes with --config") }
            if mode == .ortho { throw ValidationError("--mode ortho changes nothing on a loaded --model (its weights are as trained)") }
        }
        if !simulateUnfrozen.isEmpty && !checkStep { throw ValidationError("--simulate-unfrozen goes with --check-step") }
    }

    func run() throws {
        // A single-process command: under mpirun every rank would print the same table, so only the
        // first rank does the work and prints.
        if let rank = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_RANK"].flatMap(Int.init), rank > 0 { return }
        if let config {
            let study = try QKFreezeStudyConfig.load(path: config, overrides: overrides)
            try study.train.validateFiles(file: config)
            let mode = self.mode ?? .standard
            if checkStep {
                let check = try FreezeCheck.run(config: study.train, mode: mode, options: study.study.options,
                                                simulateUnfrozen: simulateUnfrozen)
                show(check.report)
                if check.passed {
                    print(check.summary)
                } else {
                    FileHandle.standardError.write(Data((check.summary + "\n").utf8))
                    throw ExitCode.failure
                }
            } else {
                show(try FreezeCheck.parameterReport(config: study.train, mode: mode, options: study.study.options))
            }
        } else if let model {
            let loaded = try HFCheckpoint.load(folder: model)
            if let adapter {
                loaded.adapters = try PEFTAdapter.load(folder: adapter, for: loaded.config)
                loaded.frozen = Set(loaded.layout.entries.map(\.role))
            }
            if mode == .orthoFrozen { loaded.frozen.formUnion(QKFreezeMode.orthoFrozen.frozenRoles(layerCount: loaded.config.layerCount)) }
            show(ParameterReport(model: loaded))
        }
    }

    func show(_ report: ParameterReport) {
        if hfNames {
            let width = max(40, report.rows.map(\.name.count).max() ?? 0)
            for r in report.rows { print(r.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + r.hfName) }
            print("")
        }
        print(report.table)
        let qk = report.rows.filter { $0.name.hasSuffix(".attn.q.weight") || $0.name.hasSuffix(".attn.k.weight") }.reduce(0) { $0 + $1.count }
        print("W_q and W_k: \(qk) parameters (\(String(format: "%.2f", report.total > 0 ? 100 * Double(qk) / Double(report.total) : 0))% of all): the share ortho-frozen freezes")
    }
}
