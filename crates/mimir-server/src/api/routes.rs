//! A router that keeps the table of what it serves.
//!
//! axum cannot list a router's routes, so every API route is added through
//! [`Routes`], which records its method and path as it adds it. The OpenAPI
//! test compares that table with the document, so a route added without
//! being documented (or documented and not served) fails the suite.

use crate::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, post, put};

/// The API router being built and the `(method, path)` of every route in it.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    served: Vec<(Method, &'static str)>,
}

impl Routes {
    /// No routes.
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Serves `method_router` at `path`, recording it as `method`: the one
    /// place where a caller states the method, for routes with their own layers.
    /// A body must be JSON ([`super::guard::require_json`]); checked on the
    /// route, so a method the path does not serve is 405 whatever the body.
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        method_router: MethodRouter<AppState>,
    ) -> Routes {
        self.served.push((method, path));
        let method_router =
            method_router.route_layer(axum::middleware::from_fn(super::guard::require_json));
        self.router = self.router.route(path, method_router);
        self
    }

    /// `GET path`.
    pub fn get<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::GET, path, get(handler))
    }

    /// `POST path`.
    pub fn post<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::POST, path, post(handler))
    }

    /// `PUT path`.
    pub fn put<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::PUT, path, put(handler))
    }

    /// `DELETE path`.
    pub fn delete<H, T>(self, path: &'static str, handler: H) -> Routes
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(Method::DELETE, path, delete(handler))
    }

    /// The same routes with the router changed by `f` (a layer, a guard).
    pub fn map(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Routes {
        self.router = f(self.router);
        self
    }

    /// Both sets of routes.
    pub fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.served.extend(other.served);
        self
    }

    /// Every `(method, path)` served, in the order added.
    pub fn served(&self) -> &[(Method, &'static str)] {
        &self.served
    }

    /// The router.
    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}
