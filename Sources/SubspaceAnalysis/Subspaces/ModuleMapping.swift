import SubspaceModel

/// Where one role's rows (q, k, v, o, gate, up or down of a layer) sit inside a linear module: GPT-2's
/// fused `c_attn` holds q, k and v stacked along its output; every other module holds one role.
public struct RoleRows: Sendable, Equatable, Codable {
    public var role: String
    /// The HF module path holding the role, e.g. `transformer.h.0.attn.c_attn`.
    public var module: String
    /// First row of the role inside the module's [out, in] weight, and its row count.
    public var rowStart: Int
    public var rows: Int

    enum CodingKeys: String, CodingKey {
        case role, module, rows
        case rowStart = "row_start"
    }
}

/// One target module and, role by role, where its rows come from in the source model.
public struct ModuleMapping: Sendable, Equatable, Codable {
    /// The target's HF module path.
    public var target: String
    public var layer: Int
    public var kind: ModuleKind
    /// The target module's roles in row order, with the target rows each occupies.
    public var targetRoles: [RoleRows]
    /// Per target role (same order): the source rows of that role, or nil when the source model has no
    /// such role at this layer (e.g. a gate for a GPT-2 source).
    public var sourceRoles: [RoleRows?]
    /// Per target role: whether its source module carries an adapter (otherwise its update is zero).
    public var adapted: [Bool]
    /// [out, in] of the target module.
    public var targetShape: [Int]
    /// [Σ source role rows, in] of the source rows stacked in the target's role order.
    public var sourceShape: [Int]

    enum CodingKeys: String, CodingKey {
        case target, layer, kind
        case targetRoles = "target_roles"
        case sourceRoles = "source_roles"
        case adapted
        case targetShape = "target_shape"
        case sourceShape = "source_shape"
    }

    /// The adapted source modules that contribute an update, in first-use order.
    public var sourceModules: [String] {
        var out: [String] = []
        for (r, a) in zip(sourceRoles, adapted) where a { if let r, !out.contains(r.module) { out.append(r.module) } }
        return out
    }

    /// Equal shapes role by role: the projection needs no map between the two coordinate systems.
    public var shapesMatch: Bool {
        targetShape == sourceShape && zip(targetRoles, sourceRoles).allSatisfy { $0.rows == $1?.rows }
    }
}

/// A source module (or one of its roles) that has no place in the target model.
public struct UnmappedModule: Sendable, Equatable, Codable {
    public var module: String
    public var role: String?
    public var reason: String
}

/// Maps linear modules between two models by structure, not by name: a module is (layer index, role),
/// the roles being q, k, v, o, gate, up and down. GPT-2's fused `c_attn` is the three roles q|k|v
/// stacked, so a `c_attn` adapter feeds llama's q_proj, k_proj and v_proj, and llama's three feed one
/// `c_attn`. Layer i maps to layer i; roles or layers the other model does not have are reported.
public enum ModuleMapper {
    /// The rows of each role inside each linear module of `config`, by module path.
    public static func roles(of config: ModelConfig) -> [(module: LinearModule, roles: [RoleRows])] {
        HFNaming(config: config).linearModules.map { m in
            var start = 0
            var roles: [RoleRows] = []
            for part in m.parts {
                let n = rows(part, config)
                roles.append(RoleRows(role: roleName(part), module: m.path, rowStart: start, rows: n))
                start += n
            }
            return (m, roles)
        }
    }

    /// q, k, v, o, gate, up, down.
    public static func roleName(_ part: LayerTensor) -> String {
        switch part {
        case .q: "q"
        case .k: "k"
        case .v: "v"
        case .o: "o"
        case .gate: "gate"
        case .up: "up"
        case .down: "down"
        default: preconditionFailure("\(part) is not a linear module's weight")
        }
    }

    static func rows(_ part: LayerTensor, _ c: ModelConfig) -> Int {
        switch part {
        case .q: c.queryWidth
        case .k, .v: c.keyValueWidth
        case .o, .down: c.hiddenSize
        case .gate, .up: c.intermediateSize
        default: preconditionFailure("\(part) is not a linear module's weight")
        }
    }

    /// The mappings of every target module fed by at least one of `adapted` (source module paths), and
    /// every adapted source module or role that feeds nothing. A mapping's source rows come from the
    /// source model whether or not their module is adapted (they define the source subspace); only the
    /// adapted ones carry an update.
    public static func map(source: ModelConfig, target: ModelConfig, adapted: [String]) -> (mappings: [ModuleMapping], unmapped: [UnmappedModule]) {
        let sourceRoles = roles(of: source)
        let adaptedSet = Set(adapted)
        // (layer, role) → source rows.
        var byKey: [String: RoleRows] = [:]
        for (m, rs) in sourceRoles { for r in rs { byKey["\(m.layer).\(r.role)"] = r } }
        var used: Set<String> = []
        var mappings: [ModuleMapping] = []
        for (m, rs) in roles(of: target) {
            let feeds = rs.map { byKey["\(m.layer).\($0.role)"] }
            let adaptedFeeds = feeds.map { $0.map { adaptedSet.contains($0.module) } ?? false }
            guard adaptedFeeds.contains(true) else { continue }
            for (r, a) in zip(rs, adaptedFeeds) where a { used.insert("\(m.layer).\(r.role)") }
            guard let kind = ModuleKind(modulePath: m.path) else { preconditionFailure("module \(m.path) has no kind") }
            mappings.append(ModuleMapping(
                target: m.path, layer: m.layer, kind: kind, targetRoles: rs, sourceRoles: feeds, adapted: adaptedFeeds,
                targetShape: [m.outFeatures, m.inFeatures],
                sourceShape: [zip(rs, feeds).reduce(0) { $0 + ($1.1?.rows ?? $1.0.rows) }, source.inFeatures(of: rs[0].role)]))
        }
        var unmapped: [UnmappedModule] = []
        for (m, rs) in sourceRoles where adaptedSet.contains(m.path) {
            let missing = rs.filter { !used.contains("\(m.layer).\($0.role)") }
            guard !missing.isEmpty else { continue }
            let reason = m.layer >= target.layerCount
                ? "layer \(m.layer) does not exist in the target (\(target.layerCount) layers)"
                : "the target (\(target.family.rawValue)) has no \(missing.map(\.role).joined(separator: "/")) projection"
            if missing.count == rs.count {
                unmapped.append(UnmappedModule(module: m.path, role: nil, reason: reason))
            } else {
                for r in missing { unmapped.append(UnmappedModule(module: m.path, role: r.role, reason: reason)) }
            }
        }
        return (mappings, unmapped)
    }
}

extension ModelConfig {
    /// The input width of the linear module holding `role`.
    func inFeatures(of role: String) -> Int {
        switch role {
        case "o": queryWidth
        case "down": intermediateSize
        default: hiddenSize
        }
    }
}
