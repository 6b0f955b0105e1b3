//! `#[derive(Mirror)]` for the model of `https-step-core`: the conversion of
//! each record, variant or enum to and from its twin in generated WIT
//! bindings, written once where the type is declared.
//!
//! The twins are generated in other crates (wit-bindgen in the guest,
//! wasmtime's `bindgen!` in the host), so the conversion cannot be an `impl`
//! here. The derive emits instead a `macro_rules!` macro named
//! `__mirror_<Type>`, exported from the model's crate, which writes both
//! `impl Mirror` blocks for a bindings module given by name; the crate's
//! `mirror_wit_types!` expands one per type on each side of the boundary.
//! Every field and case is converted by name, without a fallback: a field or
//! case with no twin (or a twin with no counterpart) fails to compile.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Fields, parse_macro_input};

/// Derives the `__mirror_<Type>!` macro of a struct with named fields or of
/// an enum whose cases carry no payload or exactly one.
#[proc_macro_derive(Mirror)]
pub fn derive_mirror(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(input: &DeriveInput) -> syn::Result<Tokens> {
    let name = &input.ident;
    let (from_wit, to_wit) = match &input.data {
        Data::Struct(data) => {
            let Fields::Named(fields) = &data.fields else {
                return Err(syn::Error::new_spanned(
                    name,
                    "Mirror needs named fields: WIT records have them",
                ));
            };
            let names: Vec<_> = fields
                .named
                .iter()
                .filter_map(|f| f.ident.as_ref())
                .collect();
            let convert = |ty: Tokens| {
                quote! { #ty { #(#names: $crate::Mirror::mirror(self.#names),)* } }
            };
            (convert(quote!($crate::#name)), convert(quote!($wit::#name)))
        }
        Data::Enum(data) => {
            let mut from = Vec::new();
            let mut to = Vec::new();
            for variant in &data.variants {
                let case = &variant.ident;
                match &variant.fields {
                    Fields::Unit => {
                        from.push(quote! { Self::#case => $crate::#name::#case, });
                        to.push(quote! { Self::#case => $wit::#name::#case, });
                    }
                    Fields::Unnamed(one) if one.unnamed.len() == 1 => {
                        from.push(quote! { Self::#case(v) => $crate::#name::#case($crate::Mirror::mirror(v)), });
                        to.push(quote! { Self::#case(v) => $wit::#name::#case($crate::Mirror::mirror(v)), });
                    }
                    _ => {
                        return Err(syn::Error::new_spanned(
                            case,
                            "Mirror needs cases with no payload or one: WIT variant cases have at most one",
                        ));
                    }
                }
            }
            (
                quote! { match self { #(#from)* } },
                quote! { match self { #(#to)* } },
            )
        }
        Data::Union(_) => {
            return Err(syn::Error::new_spanned(
                name,
                "Mirror does not apply to unions",
            ));
        }
    };
    let macro_name = format_ident!("__mirror_{}", name);
    Ok(quote! {
        #[doc(hidden)]
        #[macro_export]
        macro_rules! #macro_name {
            ($wit:ident) => {
                impl $crate::Mirror<$crate::#name> for $wit::#name {
                    fn mirror(self) -> $crate::#name {
                        #from_wit
                    }
                }
                impl $crate::Mirror<$wit::#name> for $crate::#name {
                    fn mirror(self) -> $wit::#name {
                        #to_wit
                    }
                }
            };
        }
    })
}
