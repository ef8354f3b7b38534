import SubspaceTraining
import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// One real training step, then every tensor compared with its value before: what is meant to be frozen
/// must be bit-identical and everything else must have changed (`subspace params --check-step`).
///
/// The seed's cautionary tale (`../shared/seeds/qk-freeze.md`) is a "frozen" model that was not frozen,
/// with a parameter count that hid it. So the check does not trust the model's own idea of what is
/// frozen: the *intended* set is worked out from the config and the mode (`intendedFrozen`), the step is
/// taken by the real `Trainer` (ZeRO included), and the outcome is judged against the intention. A tensor
/// the model marks differently from the intention is a failure too, even if it happened not to move.
public struct FreezeCheck: Sendable {
    public struct Outcome: Sendable, Equatable {
        public let name: String
        public let count: Int
        /// Frozen according to the config and the mode.
        public let intendedFrozen: Bool
        /// Frozen according to the model the trainer built (`Transformer.frozen`).
        public let markedFrozen: Bool
        /// Elements that differ after the step, and the largest difference.
        public let changedElements: Int
        public let maxChange: Float
        /// Why the tensor fails the check; nil when it behaved as intended.
        public let problem: String?
        /// A remark on a pass that needs one (a LoRA A factor cannot move in the first step).
        public let note: String?
    }

    public let mode: QKFreezeMode
    public let outcomes: [Outcome]
    /// The parameter report of the model as the trainer built it.
    public let report: ParameterReport
    public let loss: Double

    public var failures: [Outcome] { outcomes.filter { $0.problem != nil } }
    public var passed: Bool { failures.isEmpty }

    /// One line per failure, or a line saying all is well.
    public var summary: String {
        let frozen = outcomes.filter(\.intendedFrozen), trainable = outcomes.filter { !$0.intendedFrozen }
        if passed {
            return "check-step passed (\(mode.rawValue)): \(frozen.count) frozen tensors bit-identical after one step, "
                + "\(trainable.count) trainable tensors changed (loss \(String(format: "%.4f", loss)))"
        }
        return "check-step FAILED (\(mode.rawValue)): \(failures.count) tensor\(failures.count == 1 ? "" : "s") did not behave as intended\n"
            + failures.map { "  \($0.name): \($0.problem!)" }.joined(separator: "\n")
    }

    /// The base tensors the config and the mode mean to freeze: `training.freeze`, the whole base under
    /// LoRA, and W_q, W_k in `ortho-frozen`.
    public static func intendedFrozen(config: TrainConfig, mode: QKFreezeMode, layout: ParameterLayout) throws -> Set<TensorRole> {
        var roles = try Trainer.frozenTensors(config.training.freeze, layout: layout)
        if config.lora != nil { roles.formUnion(layout.entries.map(\.role)) }
        roles.formUnion(mode.frozenRoles(layerCount: layout.config.layerCount))
        return roles
    }

    /// The adapter factors the config means to freeze: for `lora.initialisation: lora-null`, those of
    /// the variant recorded in the adapter folder's null_space.json (read here, not taken from the
    /// model); none for other LoRA runs.
    public static func intendedFrozenFactors(config: TrainConfig) throws -> Set<LoRAFactor> {
        guard let lora = config.lora, lora.initialisation == .loraNull, let folder = lora.adapter else { return [] }
        guard let manifest = try LoRANullManifest.read(folder: folder) else {
            throw TrainingError.configuration("lora.adapter: \(folder) has no \(LoRANullManifest.fileName)")
        }
        return Set(manifest.variant.frozenFactors)
    }

    /// `config` with one step at the peak learning rate and nothing written outside `output`.
    static func oneStep(_ config: TrainConfig, output: String) -> TrainConfig {
        var c = config
        c.run.output = output
        c.training.steps = 1
        c.training.warmup = 0
        c.training.schedule = .constant
        c.evaluation.every = 0
        c.evaluation.sequences = 1
        c.evaluation.exactMatch = 0
        c.checkpoint.every = 0
        c.checkpoint.keep = 1
        c.checkpoint.resume = .never
        return c
    }

    /// Runs the check on one in-process rank. `simulateUnfrozen` names tensors made trainable after the
    /// mode's preparation, as a broken freeze would: the intention is unchanged, so the check must fail
    /// and name them (how the check itself is tested).
    public static func run(config: TrainConfig, mode: QKFreezeMode = .standard,
                           options: OrthogonalInit.Options = OrthogonalInit.Options(),
                           simulateUnfrozen: [String] = []) throws -> FreezeCheck {
        let work = (NSTemporaryDirectory() as NSString).appendingPathComponent("subspace-check-step-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let stepConfig = oneStep(config, output: work)
        try stepConfig.validate(worldSize: 1)
        let results = try LocalCluster.run(size: 1, timeout: 3600) { comm -> FreezeCheck in
            try check(stepConfig, mode: mode, options: options, simulateUnfrozen: simulateUnfrozen, communicator: comm)
        }
        return results[0]
    }

    /// The parameter report of the model exactly as `Trainer` builds it for `config` and `mode` (new or
    /// HF, `training.freeze`, LoRA, the mode's init and freeze), without training. Reads the config's
    /// data as training would.
    public static func parameterReport(config: TrainConfig, mode: QKFreezeMode = .standard,
                                       options: OrthogonalInit.Options = OrthogonalInit.Options()) throws -> ParameterReport {
        let work = (NSTemporaryDirectory() as NSString).appendingPathComponent("subspace-params-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let c = oneStep(config, output: work)
        try c.validate(worldSize: 1)
        return try LocalCluster.run(size: 1, timeout: 3600) { comm -> ParameterReport in
            let trainer = try Trainer(config: c, communicator: comm, prepareModel: { try mode.prepare($0, seed: c.run.seed, options: options) })
            return ParameterReport(model: trainer.model)
        }[0]
    }

    static func check(_ config: TrainConfig, mode: QKFreezeMode, options: OrthogonalInit.Options,
                      simulateUnfrozen: [String], communicator: any Communicator) throws -> FreezeCheck {
        var loss = Double.nan
        let trainer = try Trainer(config: config, communicator: communicator, prepareModel: { model in
            try mode.prepare(model, seed: config.run.seed, options: options)
            for name in simulateUnfrozen {
                if let factor = LoRAFactor(rawValue: name), let adapters = model.adapters {
                    adapters.setTraining(factor, true)
                    continue
                }
                guard let entry = model.layout.entry(named: name) else {
                    throw TrainingError.configuration("simulated unfrozen tensor '\(name)' is not in the model (names look like '\(model.layout.entries[1].name)')")
                }
                model.frozen.remove(entry.role)
            }
        }, report: { event in
            if case .step(let m) = event { loss = m.loss }
        })
        let model = trainer.model
        let intended = try intendedFrozen(config: config, mode: mode, layout: model.layout)
        let intendedFactors = try intendedFrozenFactors(config: config)
        let report = ParameterReport(model: model)
        let before = try trainer.engine.fullParameters()
        let adaptersBefore = model.adapters.map { a in a.adapters.map { (a.factor($0, b: false), a.factor($0, b: true)) } }
        try trainer.run()
        let after = try trainer.engine.fullParameters()

        var outcomes: [Outcome] = []
        func compare(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeBufferPointer<Float>) -> (Int, Float) {
            var changed = 0, largest: Float = 0
            for i in x.indices where x[i].bitPattern != y[i].bitPattern {
                changed += 1
                largest = max(largest, abs(x[i] - y[i]))
            }
            return (changed, largest)
        }
        func outcome(_ name: String, count: Int, intendedFrozen: Bool, markedFrozen: Bool, _ changed: (Int, Float), exempt: String? = nil) -> Outcome {
            var problem: String? = nil
            if intendedFrozen && changed.0 > 0 {
                problem = "meant to be frozen, but \(changed.0) of \(count) elements changed (largest change \(changed.1))"
            } else if !intendedFrozen && changed.0 == 0 && exempt == nil {
                problem = "meant to be trainable, but no element changed after one step"
            }
            if intendedFrozen != markedFrozen {
                let marked = "the model marks it \(markedFrozen ? "frozen" : "trainable") but the config and mode say \(intendedFrozen ? "frozen" : "trainable")"
                problem = problem.map { "\($0); \(marked)" } ?? marked
            }
            return Outcome(name: name, count: count, intendedFrozen: intendedFrozen, markedFrozen: markedFrozen,
                           changedElements: changed.0, maxChange: changed.1, problem: problem, note: problem == nil ? exempt : nil)
        }
        before.withUnsafeBufferPointer { b in
            after.withUnsafeBufferPointer { a in
                for e in model.layout.entries {
                    let changed = compare(UnsafeBufferPointer(rebasing: b[e.range]), UnsafeBufferPointer(rebasing: a[e.range]))
                    outcomes.append(outcome(e.name, count: e.count, intendedFrozen: intended.contains(e.role),
                                            markedFrozen: model.frozen.contains(e.role), changed))
                }
            }
        }
        if let adapters = model.adapters, let adaptersBefore {
            for (i, adapter) in adapters.adapters.enumerated() {
                let (a0, b0) = adaptersBefore[i]
                for isB in [false, true] {
                    let old = isB ? b0 : a0, new = adapters.factor(adapter, b: isB)
                    let changed = old.withUnsafeBufferPointer { x in new.withUnsafeBufferPointer { y in compare(x, y) } }
                    let trains = isB ? adapters.config.trainB : adapters.config.trainA
                    // dL/dA = scale · Bᵀ·(…): with B = 0 at the start, A gets no gradient in the first step.
                    let exempt = !isB && b0.scalars.allSatisfy { $0 == 0 } ? "no gradient in the first step (B starts at zero)" : nil
                    outcomes.append(outcome(PEFTAdapter.key(adapter, b: isB), count: old.count,
                                            intendedFrozen: intendedFactors.contains(isB ? .up : .down),
                                            markedFrozen: !trains, changed, exempt: exempt))
                }
            }
        }
        return FreezeCheck(mode: mode, outcomes: outcomes, report: report, loss: loss)
    }
}
