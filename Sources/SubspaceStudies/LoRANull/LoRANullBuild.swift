import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceAnalysis

/// `subspace lora-null build`: calibration covariances of every target module's input, accumulated in
/// double precision while each rank runs the forward pass on its slice of the calibration set and summed
/// across ranks; their eigendecompositions spread over ranks (LPT plan, cost n³); the variant's factors
/// per module; a PEFT adapter folder that loads on the original base, and `null_space.json`.
public enum LoRANullBuild {
    public struct Options: Sendable {
        public var model: String
        public var calibration: String
        public var calibrationOptions = CalibrationSet.Options()
        public var rank: Int
        public var variant: LoRANullVariant
        /// PEFT target_modules names; nil: every linear projection of the blocks.
        public var targets: [String]?
        public var covariance: CovarianceEstimator = .scaled
        /// lora_alpha; nil: r (scale 1).
        public var alpha: Float?
        /// Sequences per forward pass on one rank.
        public var batch = 8
        public var output: String

        public init(model: String, calibration: String, rank: Int, variant: LoRANullVariant, output: String) {
            self.model = model
            self.calibration = calibration
            self.rank = rank
            self.variant = variant
            self.output = output
        }
    }

    /// PEFT's names of every linear projection of the blocks, for a family.
    public static func allTargets(_ config: ModelConfig) -> [String] {
        config.family == .gpt2 ? ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"]
            : ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    }

    public struct Outcome {
        public let manifest: LoRANullManifest
        /// The adapters as written (rank r, or 2r for a residual pair), on every rank.
        public let adapters: LoRAAdapters
        public let bases: [NullSpaceBasis]
        public let plan: String
    }

    /// Every rank calls it; rank 0 writes the folder. Problems a user can cause (a target matching no
    /// module, rank ≥ an input width, calibration longer than the context, a non-finite activation) are
    /// thrown on every rank before or at the same collective.
    @discardableResult
    public static func run(_ o: Options, communicator: any Communicator, log: (String) -> Void = { _ in }) throws -> Outcome {
        guard o.rank >= 1 else { throw AnalysisError("--rank must be ≥ 1, got \(o.rank)") }
        guard o.batch >= 1 else { throw AnalysisError("--batch must be ≥ 1, got \(o.batch)") }
        let model = try HFCheckpoint.load(folder: o.model)
        let targets = o.targets ?? allTargets(model.config)
        let alpha = o.alpha ?? Float(o.rank)
        let lora = LoRAConfig(rank: o.rank, alpha: alpha, targets: .names(targets))
        let modules = try lora.select(from: HFNaming(config: model.config).linearModules)
        if let narrow = modules.first(where: { o.rank >= $0.inFeatures }) {
            throw AnalysisError(tensor: narrow.path, "--rank \(o.rank) must be smaller than the module's input width \(narrow.inFeatures)")
        }
        let data = try CalibrationSet.load(o.calibration, options: o.calibrationOptions, model: model.config)
        guard data.count >= 1 else { throw AnalysisError(file: o.calibration, "no calibration sequences") }
        log("calibration: \(data.count) sequences of \(data.sequenceLength) tokens from \(data.source); \(modules.count) target modules, \(InputSite.of(modules).count) distinct inputs; covariance \(o.covariance.rawValue)")

        // 1. Covariances: each rank its slice, summed across ranks.
        let covariance = InputCovariance(modules: modules, estimator: o.covariance)
        model.linearInputObserver = covariance
        let mine = data.slice(rank: communicator.rank, size: communicator.size)
        data.forEachBatch(mine, batch: o.batch) { ids, B in
            covariance.sequenceOffset = mine.lowerBound
            model.forward(ids: ids, B: B, T: data.sequenceLength)
        }
        model.linearInputObserver = nil
        try covariance.finish(communicator: communicator)

        // 2. Smallest-r eigenvectors, sites spread over ranks.
        var planLine = ""
        let bases = try NullSpaceBases.compute(covariance, rank: o.rank, communicator: communicator) { event in
            if case .planned(let plan, let sites) = event {
                planLine = "eigendecompositions: \(sites.count) over \(plan.rankCount) ranks, LPT by n³, max/mean load \(String(format: "%.2f", plan.maxOverMean))"
                log(planLine)
            }
        }
        let bySite = Dictionary(uniqueKeysWithValues: bases.map { ($0.site, $0) })

        // 3. Factors per module (cheap: an [out, r] SVD each), on every rank.
        let adapters = try LoRAAdapters(config: lora, model: model.config)
        for a in adapters.adapters {
            let basis = bySite[InputSite(a.module)]!
            let w = LoRAInitialisation.moduleWeight(model, a.module)
            let (down, up) = try LoRANull.factors(variant: o.variant, weight: w, basis: basis.basis, scale: lora.scale)
            adapters.setFactor(a, b: false, down)
            adapters.setFactor(a, b: true, up)
        }
        let export = o.variant.export == .residualPair
            ? try LoRAInitialisation.pissaAsLoRA(adapters, initial: Array(UnsafeBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount)), model: model.config)
            : adapters
        let manifest = LoRANullManifest(
            variant: o.variant, rank: o.rank, alpha: alpha, covariance: o.covariance.rawValue, calibration: data.source,
            calibrationSequences: covariance.sequences, calibrationTokens: covariance.tokens, worldSize: communicator.size,
            modules: adapters.adapters.map { a in
                let b = bySite[InputSite(a.module)]!
                return LoRANullManifest.Module(name: a.module.path, inputWidth: a.module.inFeatures, eigenvalues: b.eigenvalues,
                                               trace: b.trace, largest: b.largest)
            })
        if communicator.rank == 0 {
            try PEFTAdapter.save(export, model: model.config, to: o.output, baseModel: o.model)
            try manifest.write(folder: o.output)
        }
        try communicator.barrier()
        return Outcome(manifest: manifest, adapters: export, bases: bases, plan: planLine)
    }
}
