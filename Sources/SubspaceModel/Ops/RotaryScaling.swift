import Foundation

/// Rotary scaling as HF's `rope_scaling` (transformers 4) or `rope_parameters` (transformers 5) describes
/// it, for the static kinds: `linear` (every inverse frequency divided by `factor`) and `llama3` (Llama-3.1's
/// piecewise rule: long wavelengths divided by `factor`, short ones kept, a smooth blend between). Both
/// leave the attention scale at 1. `dynamic` and `yarn` are refused where the config is read.
public enum RotaryScaling: Sendable, Equatable, Codable {
    case linear(factor: Float)
    case llama3(factor: Float, lowFrequencyFactor: Float, highFrequencyFactor: Float, originalMaxPositions: Int)

    /// HF's `rope_type` name.
    public var kind: String {
        switch self {
        case .linear: "linear"
        case .llama3: "llama3"
        }
    }

    /// The inverse frequencies after scaling, computed in float32 as transformers'
    /// `_compute_llama3_parameters` / `_compute_linear_scaling_rope_parameters` do.
    public func apply(_ invFreq: [Float]) -> [Float] {
        switch self {
        case .linear(let factor):
            return invFreq.map { $0 / factor }
        case .llama3(let factor, let low, let high, let original):
            let lowWavelength = Float(original) / low
            let highWavelength = Float(original) / high
            return invFreq.map { f in
                let wavelength = 2 * Float.pi / f
                if wavelength < highWavelength { return f }
                if wavelength > lowWavelength { return f / factor }
                let smooth = (Float(original) / wavelength - low) / (high - low)
                return (1 - smooth) * f / factor + smooth * f
            }
        }
    }

    /// The `rope_scaling` / `rope_parameters` entries that describe it (`rope_type` included).
    public var hfParameters: [String: Any] {
        switch self {
        case .linear(let factor): ["rope_type": "linear", "factor": Double(factor)]
        case .llama3(let factor, let low, let high, let original):
            ["rope_type": "llama3", "factor": Double(factor), "low_freq_factor": Double(low),
             "high_freq_factor": Double(high), "original_max_position_embeddings": original]
        }
    }

    /// Reads a `rope_scaling` or `rope_parameters` object; nil for `default`. `key` names it in errors.
    static func read(_ p: [String: Any], key: String, fail: (String, String) -> Error) throws -> RotaryScaling? {
        let kind = (p["rope_type"] as? String) ?? (p["type"] as? String) ?? "default"
        func number(_ name: String) throws -> Float {
            guard let n = p[name] as? NSNumber, n.floatValue > 0 else { throw fail("\(key).\(name)", "missing or not a positive number") }
            return n.floatValue
        }
        switch kind {
        case "default": return nil
        case "linear": return .linear(factor: try number("factor"))
        case "llama3":
            let low = try number("low_freq_factor"), high = try number("high_freq_factor")
            guard high > low else { throw fail("\(key).high_freq_factor", "must exceed low_freq_factor") }
            guard let original = (p["original_max_position_embeddings"] as? NSNumber)?.intValue, original > 0 else {
                throw fail("\(key).original_max_position_embeddings", "missing or not a positive integer")
            }
            return .llama3(factor: try number("factor"), lowFrequencyFactor: low, highFrequencyFactor: high, originalMaxPositions: original)
        default:
            throw fail("\(key).rope_type", "'\(kind)' is not supported (default, linear, llama3)")
        }
    }
}
