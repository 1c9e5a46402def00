import BeanCore
print("beanctl \(BeandVersion.string)")
