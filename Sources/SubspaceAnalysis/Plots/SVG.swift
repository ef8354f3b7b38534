import Foundation

/// Hand-written SVG: self-contained documents (no scripts, no external fonts or images), built from
/// escaped text, so they open in any browser and inline into HTML as they are.
public struct SVGDocument: Sendable {
    public let width: Double
    public let height: Double
    private(set) var body: [String] = []

    public init(width: Double, height: Double) {
        self.width = width
        self.height = height
    }

    /// The document with its XML declaration (for a standalone .svg file).
    public var xml: String { "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + element }

    /// The `<svg>` element alone (for inlining into HTML).
    public var element: String {
        """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(fmt(width))" height="\(fmt(height))" viewBox="0 0 \(fmt(width)) \(fmt(height))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect x="0" y="0" width="\(fmt(width))" height="\(fmt(height))" fill="#ffffff"/>
        \(body.joined(separator: "\n"))
        </svg>

        """
    }

    public mutating func raw(_ markup: String) { body.append(markup) }

    public mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String = "#000000",
                              width: Double = 1, dash: String? = nil, opacity: Double = 1) {
        body.append("<line x1=\"\(fmt(x1))\" y1=\"\(fmt(y1))\" x2=\"\(fmt(x2))\" y2=\"\(fmt(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(fmt(width))\"\(dashAttribute(dash))\(opacityAttribute(opacity, "stroke-opacity"))/>")
    }

    public mutating func polyline(_ points: [(Double, Double)], stroke: String, width: Double = 1.5,
                                  dash: String? = nil, opacity: Double = 1) {
        guard points.count >= 2 else { return }
        let list = points.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " ")
        body.append("<polyline points=\"\(list)\" fill=\"none\" stroke=\"\(stroke)\" stroke-width=\"\(fmt(width))\" stroke-linejoin=\"round\"\(dashAttribute(dash))\(opacityAttribute(opacity, "stroke-opacity"))/>")
    }

    /// A filled, unstroked polygon (e.g. a band around a curve).
    public mutating func polygon(_ points: [(Double, Double)], fill: String, opacity: Double = 1) {
        guard points.count >= 3 else { return }
        let list = points.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " ")
        body.append("<polygon points=\"\(list)\" fill=\"\(fill)\" stroke=\"none\"\(opacityAttribute(opacity, "fill-opacity"))/>")
    }

    public mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String,
                              stroke: String? = nil, title: String? = nil) {
        let s = stroke.map { " stroke=\"\($0)\" stroke-width=\"0.5\"" } ?? ""
        if let title {
            body.append("<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(max(w, 0)))\" height=\"\(fmt(max(h, 0)))\" fill=\"\(fill)\"\(s)><title>\(escapeXML(title))</title></rect>")
        } else {
            body.append("<rect x=\"\(fmt(x))\" y=\"\(fmt(y))\" width=\"\(fmt(max(w, 0)))\" height=\"\(fmt(max(h, 0)))\" fill=\"\(fill)\"\(s)/>")
        }
    }

    public mutating func circle(_ x: Double, _ y: Double, r: Double, fill: String) {
        body.append("<circle cx=\"\(fmt(x))\" cy=\"\(fmt(y))\" r=\"\(fmt(r))\" fill=\"\(fill)\"/>")
    }

    public enum Anchor: String { case start, middle, end }

    public mutating func text(_ x: Double, _ y: Double, _ content: String, anchor: Anchor = .start, size: Double = 12,
                              weight: String? = nil, rotate: Double? = nil, fill: String = "#000000") {
        let r = rotate.map { " transform=\"rotate(\(fmt($0)) \(fmt(x)) \(fmt(y)))\"" } ?? ""
        let w = weight.map { " font-weight=\"\($0)\"" } ?? ""
        body.append("<text x=\"\(fmt(x))\" y=\"\(fmt(y))\" text-anchor=\"\(anchor.rawValue)\" font-size=\"\(fmt(size))\" fill=\"\(fill)\"\(w)\(r)>\(escapeXML(content))</text>")
    }

    private func dashAttribute(_ dash: String?) -> String { dash.map { " stroke-dasharray=\"\($0)\"" } ?? "" }
    private func opacityAttribute(_ opacity: Double, _ name: String) -> String { opacity < 1 ? " \(name)=\"\(fmt(opacity))\"" : "" }
}

/// Text safe inside XML elements and attribute values.
public func escapeXML(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for c in s.unicodeScalars {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&apos;"
        default:
            // Control characters other than tab/newline are not allowed in XML 1.0.
            if c.value < 0x20 && c != "\t" && c != "\n" && c != "\r" { continue }
            out.unicodeScalars.append(c)
        }
    }
    return out
}

/// A number for an attribute: at most two decimals, no exponent.
func fmt(_ x: Double) -> String {
    guard x.isFinite else { return "0" }
    let r = (x * 100).rounded() / 100
    if r == r.rounded() && abs(r) < 1e15 { return String(Int(r)) }
    return String(format: "%.2f", r)
}

/// Colours for series (Tableau 10), repeated when there are more series.
public enum Palette {
    public static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    public static func color(_ i: Int) -> String { colors[((i % colors.count) + colors.count) % colors.count] }

    /// Sequential scale for t in [0, 1] (light yellow → dark blue, viridis-like, readable in grey).
    public static func sequential(_ t: Double) -> String {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(1, max(0, t.isFinite ? t : 0)) * Double(stops.count - 1)
        let i = min(Int(x), stops.count - 2)
        let f = x - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        func mix(_ u: Double, _ v: Double) -> Int { Int((u + (v - u) * f).rounded()) }
        return String(format: "#%02x%02x%02x", mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}

/// Tick positions and labels for an axis.
enum Ticks {
    /// About `count` round ticks covering [low, high].
    static func linear(_ low: Double, _ high: Double, count: Int = 6) -> [Double] {
        guard high > low, low.isFinite, high.isFinite else { return [low] }
        let raw = (high - low) / Double(max(count - 1, 1))
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var ticks: [Double] = []
        var t = ceil(low / step - 1e-9) * step
        while t <= high + step * 1e-9 {
            ticks.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return ticks
    }

    /// Powers of ten within [low, high] (both > 0); every other one past 8 decades.
    static func logarithmic(_ low: Double, _ high: Double) -> [Double] {
        let (a, b) = (Int(floor(log10(low) + 1e-9)), Int(ceil(log10(high) - 1e-9)))
        let stride = max(1, (b - a + 7) / 8)
        return Swift.stride(from: a, through: b, by: stride).map { pow(10, Double($0)) }.filter { $0 >= low * (1 - 1e-9) && $0 <= high * (1 + 1e-9) }
    }

    static func label(_ x: Double) -> String {
        if x == 0 { return "0" }
        let a = abs(x)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.0e", x).replacingOccurrences(of: "e+0", with: "e").replacingOccurrences(of: "e-0", with: "e-").replacingOccurrences(of: "e+", with: "e") }
        if x == x.rounded() { return String(Int(x)) }
        var s = String(format: "%.3f", x)
        while s.hasSuffix("0") { s.removeLast() }
        return s
    }
}
