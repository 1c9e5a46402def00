import BeanCore
print("beand \(BeandVersion.string)")
