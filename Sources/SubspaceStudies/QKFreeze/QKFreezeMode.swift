import SubspaceTraining
import SubspaceModel

/// The three arms of the Q/K freeze study (`../shared/seeds/qk-freeze.md`, groups A, B, C).
public enum QKFreezeMode: String, Sendable, CaseIterable, Codable, Comparable {
    /// The usual initialisation, everything trainable (group A, "GPT-Base").
    case standard
    /// W_q and W_k orthonormal at the start, then trained (group B, "OELM-NoFreeze").
    case ortho
    /// W_q and W_k orthonormal and frozen: no weight gradient, no optimizer state, nothing all-reduced
    /// (group C, "OELM-Freeze").
    case orthoFrozen = "ortho-frozen"

    public var isOrthogonal: Bool { self != .standard }
    public var freezesQK: Bool { self == .orthoFrozen }

    /// The tensors this mode freezes on top of whatever the config freezes.
    public func frozenRoles(layerCount: Int) -> Set<TensorRole> {
        freezesQK ? Set(OrthogonalInit.roles(layerCount: layerCount)) : []
    }

    /// Applies the mode to a freshly built model, before the optimizer sees it (`Trainer`'s
    /// `prepareModel`): the orthogonal draw from `seed`, and the freeze.
    public func prepare(_ model: Transformer, seed: UInt64, options: OrthogonalInit.Options) throws {
        guard isOrthogonal else { return }
        try OrthogonalInit.apply(to: model, seed: seed, options: options)
        model.frozen.formUnion(frozenRoles(layerCount: model.config.layerCount))
    }

    public static func < (a: Self, b: Self) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// "a list of standard, ortho or ortho-frozen" for messages.
    static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
