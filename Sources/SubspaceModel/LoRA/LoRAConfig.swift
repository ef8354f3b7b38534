import Foundation

/// LoRA hyper-parameters with PEFT's meaning (`adapter_config.json` keys in comments).
public struct LoRAConfig: Sendable, Equatable {
    /// How target modules are chosen: a list of names (a module matches when its path equals a name or
    /// ends with "." + name; every name must match something) or one regular expression that must match
    /// a whole module path (`target_modules` as a string).
    public enum Targets: Sendable, Equatable {
        case names([String])
        case pattern(String)
    }

    public var rank: Int                 // r
    public var alpha: Float              // lora_alpha
    public var targets: Targets          // target_modules
    public var dropout: Float = 0        // lora_dropout
    public var useRSLoRA = false         // use_rslora: scale alpha/√r instead of alpha/r
    public var trainA = true
    public var trainB = true

    public init(rank: Int, alpha: Float, targets: Targets, dropout: Float = 0, useRSLoRA: Bool = false) {
        self.rank = rank
        self.alpha = alpha
        self.targets = targets
        self.dropout = dropout
        self.useRSLoRA = useRSLoRA
    }

    /// The factor on B·A.
    public var scale: Float { useRSLoRA ? alpha / Float(rank).squareRoot() : alpha / Float(rank) }

    /// The modules these targets select, or an error naming a target that matches nothing.
    public func select(from modules: [LinearModule]) throws -> [LinearModule] {
        switch targets {
        case .names(let names):
            for name in names where !modules.contains(where: { $0.path == name || $0.path.hasSuffix("." + name) }) {
                throw LoRAError(reason: "target module '\(name)' matches no module of this model (modules look like '\(modules.first?.path ?? "")')")
            }
            return modules.filter { m in names.contains { m.path == $0 || m.path.hasSuffix("." + $0) } }
        case .pattern(let pattern):
            let regex: NSRegularExpression
            do { regex = try NSRegularExpression(pattern: "^(?:\(pattern))$") } catch {
                throw LoRAError(reason: "target_modules pattern '\(pattern)' is not a valid regular expression")
            }
            let chosen = modules.filter {
                regex.firstMatch(in: $0.path, range: NSRange($0.path.startIndex..., in: $0.path)) != nil
            }
            if chosen.isEmpty { throw LoRAError(reason: "target_modules pattern '\(pattern)' matches no module of this model") }
            return chosen
        }
    }
}

public struct LoRAError: Error, CustomStringConvertible, Sendable {
    public let reason: String
    public var description: String { reason }
}
