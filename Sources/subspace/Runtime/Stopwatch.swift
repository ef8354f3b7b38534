import Foundation

/// Wall-clock timing for benchmarks.
enum Stopwatch {
    /// Seconds `body` took.
    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? .nan : (s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2)
    }
}

/// `key=value` figures joined for a bench's last line.
func figures(_ pairs: KeyValuePairs<String, Any>) -> String {
    pairs.map { key, value in
        if let d = value as? Double { return "\(key)=\(String(format: d.magnitude >= 100 ? "%.1f" : "%.4g", d))" }
        return "\(key)=\(value)"
    }.joined(separator: " ")
}
