/// The version every binary reports (`beand --version`, `beanctl version`, control `version`).
public enum BeandVersion {
    public static let string = "0.1.0"
}
