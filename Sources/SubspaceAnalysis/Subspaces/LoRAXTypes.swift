/// How a LoRA adapter is carried to another base model.
public struct LoRAXOptions: Sendable, Equatable {
    /// K, the dimension of the singular subspaces compared and projected onto (clamped per module to its
    /// smallest dimension); nil: half of each module's smallest dimension.
    public var subspaceRank: Int?
    /// Modules whose φ_U or φ_V is below this are not transferred; nil: per module and side, halfway from
    /// the chance level to 1, i.e. chance + `defaultThresholdFraction`·(1 − chance).
    public var threshold: Double?
    public var method: SVDMethod
    /// Randomized only: extra probes p and power iterations q; unit i draws from `seed` split by i, so the
    /// result does not depend on which rank computed it.
    public var oversampling: Int
    public var powerIterations: Int
    public var seed: UInt64

    /// The default threshold's place between chance (0) and identical subspaces (1).
    public static let defaultThresholdFraction = 0.5

    public init(subspaceRank: Int? = nil, threshold: Double? = nil, method: SVDMethod = .full,
                oversampling: Int = 10, powerIterations: Int = 2, seed: UInt64 = 0) {
        self.subspaceRank = subspaceRank
        self.threshold = threshold
        self.method = method
        self.oversampling = oversampling
        self.powerIterations = powerIterations
        self.seed = seed
    }

    /// Problems with the options, as messages naming the option.
    public func problems() -> [String] {
        var out: [String] = []
        if let k = subspaceRank, k < 1 { out.append("subspace rank must be ≥ 1, got \(k)") }
        if let t = threshold, !(t >= 0 && t <= 1) { out.append("threshold must be in [0, 1], got \(t)") }
        if oversampling < 0 { out.append("oversampling must be ≥ 0, got \(oversampling)") }
        if powerIterations < 0 { out.append("power iterations must be ≥ 0, got \(powerIterations)") }
        return out
    }

    /// k for a module pair: K (or half the smallest dimension), at most every dimension involved.
    public func k(source: [Int], target: [Int]) -> Int {
        let smallest = min(source.min() ?? 1, target.min() ?? 1)
        return max(1, min(subspaceRank ?? max(1, smallest / 2), smallest))
    }

    /// The threshold on one side of a module with this chance level.
    public func threshold(chance: Double) -> Double {
        threshold ?? chance + LoRAXOptions.defaultThresholdFraction * (1 - chance)
    }

    /// Relative cost of a module pair's two decompositions: m·n·min(m, n) each for exact SVDs,
    /// m·n·(k + p) for randomized ones.
    public func cost(source: [Int], target: [Int], k: Int) -> Double {
        func one(_ s: [Int]) -> Double {
            let (m, n) = (Double(s[0]), Double(s[1]))
            switch method {
            case .full: return m * n * Double(min(s[0], s[1]))
            case .randomized: return m * n * Double(min(k + oversampling, min(s[0], s[1])))
            }
        }
        return one(source) + one(target)
    }

    public var thresholdRule: String {
        threshold.map { "φ_U ≥ \($0) and φ_V ≥ \($0)" }
            ?? "φ ≥ chance + \(LoRAXOptions.defaultThresholdFraction)·(1 − chance) on both sides (halfway from chance to identical)"
    }
}

/// One target module's transfer: similarities, their chance levels, the decision and the update's size.
public struct ModuleTransfer: Codable, Sendable, Equatable {
    /// The target's HF module path, e.g. `model.layers.0.self_attn.q_proj`.
    public var name: String
    public var layer: Int
    public var kind: ModuleKind
    /// The adapted source modules feeding it.
    public var sources: [String]
    /// The roles it holds (q, k, v, …) and which of them carry a source update.
    public var roles: [String]
    public var adaptedRoles: [String]
    /// "equal_shapes" (U_tU_tᵀ·ΔW·V_tV_tᵀ) or "mapped" (least-squares map between the singular bases).
    public var projection: String
    public var sourceShape: [Int]
    public var targetShape: [Int]
    /// k, the subspace dimension used.
    public var k: Int
    public var phiU: Double
    public var phiV: Double
    /// k / max(d_s, d_t) for the output (U) and input (V) side; `chance` is the larger.
    public var chanceU: Double
    public var chanceV: Double
    public var chance: Double
    /// φ / chance.
    public var ratioU: Double
    public var ratioV: Double
    public var thresholdU: Double
    public var thresholdV: Double
    public var transferred: Bool
    /// Why not, when not.
    public var reason: String?
    /// ‖ΔW_t‖_F / ‖ΔW_s‖_F of the written adapter (0 when not transferred).
    public var normRatio: Double?
    /// The same for the projection, whether or not it was kept.
    public var projectedNormRatio: Double?
    /// ‖scale·B_s·A_s‖_F over the module's source rows.
    public var sourceNorm: Double
    /// Several source modules (rank r each) into one target module: the fraction of the projected
    /// update's energy the rank-r truncation keeps; nil when one source module feeds it.
    public var rankEnergyKept: Double?
    public var ownerRank: Int
    public var seconds: Double

    enum CodingKeys: String, CodingKey {
        case name, layer, kind, sources, roles, projection, k, chance, transferred, reason, seconds
        case adaptedRoles = "adapted_roles"
        case sourceShape = "source_shape"
        case targetShape = "target_shape"
        case phiU = "phi_u"
        case phiV = "phi_v"
        case chanceU = "chance_u"
        case chanceV = "chance_v"
        case ratioU = "ratio_u"
        case ratioV = "ratio_v"
        case thresholdU = "threshold_u"
        case thresholdV = "threshold_v"
        case normRatio = "norm_ratio"
        case projectedNormRatio = "projected_norm_ratio"
        case sourceNorm = "source_norm"
        case rankEnergyKept = "rank_energy_kept"
        case ownerRank = "owner_rank"
    }
}

/// Everything `transfer.json` holds.
public struct LoRAXReport: Codable, Sendable {
    public var sourceModel: String
    public var targetModel: String
    public var adapter: String
    public var sourceFamily: String
    public var targetFamily: String
    /// The adapter's r and alpha, kept.
    public var rank: Int
    public var alpha: Double
    /// The target adapter's target_modules (a list of names, or a pattern).
    public var targetModules: [String]
    public var subspaceRank: Int?
    public var threshold: Double?
    public var thresholdRule: String
    public var method: SVDMethod
    public var worldSize: Int
    public var modules: [ModuleTransfer]
    /// Adapted source modules (or roles) with no place in the target.
    public var unmapped: [UnmappedModule]
    public var transferredCount: Int
    public var definitions: [String: String]
    public var wallSeconds: Double
    public var planMaxOverMean: Double

    enum CodingKeys: String, CodingKey {
        case adapter, rank, alpha, threshold, method, modules, unmapped, definitions
        case sourceModel = "source_model"
        case targetModel = "target_model"
        case sourceFamily = "source_family"
        case targetFamily = "target_family"
        case targetModules = "target_modules"
        case subspaceRank = "subspace_rank"
        case thresholdRule = "threshold_rule"
        case worldSize = "world_size"
        case transferredCount = "transferred_count"
        case wallSeconds = "wall_seconds"
        case planMaxOverMean = "plan_max_over_mean"
    }

    static let definitionTexts: [String: String] = [
        "phi_u": "‖U_tᵀ·E·U_s‖²_F / k: U_s, U_t the top-k left singular vectors of the source and target base weights ([out, in]), E the coordinate embedding (identity for equal shapes); 1 for identical subspaces",
        "phi_v": "the same for the right singular vectors (input side)",
        "chance_u": "k / max(out_s, out_t): E[φ_U] for a random k-dimensional subspace",
        "chance_v": "k / max(in_s, in_t)",
        "chance": "max(chance_u, chance_v)",
        "ratio_u": "phi_u / chance_u",
        "equal_shapes": "B_t = U_t(U_tᵀB_s), A_t = (A_sV_t)V_tᵀ, so scale·B_t·A_t = U_tU_tᵀ(scale·B_s·A_s)V_tV_tᵀ with the source's r and scale",
        "mapped": "M_U = U_tᵀE_outU_s and M_V = V_tᵀE_inV_s (least squares: argmin_M ‖U_t·M − E·U_s‖_F); B_t = U_t·M_U·U_sᵀB_s, A_t = A_sV_s·M_Vᵀ·V_tᵀ",
        "norm_ratio": "‖ΔW_t‖_F / ‖ΔW_s‖_F with ΔW = scale·B·A, from the factors",
        "rank_energy_kept": "several rank-r source modules into one target module: energy of the projected update kept by its best rank-r approximation",
        "not_transferred": "factors written as zeros (ΔW_t = 0 exactly), so the adapter keeps its target_modules and the module behaves as the target base",
    ]
}
